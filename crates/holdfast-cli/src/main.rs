//! The `holdfast` binary: a thin layer over the engine and sources. It parses arguments,
//! finds secrets, prints results (text or `--json`) and maps errors to documented exit codes.

mod cli;
mod commands;
mod exit;
mod output;
mod secrets;

use clap::Parser;

fn main() {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() {
                exit::USAGE
            } else {
                exit::OK
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    // Die quietly on a closed pipe (`holdfast points | head`) like other Unix tools,
    // instead of panicking in println!.
    // SAFETY: restoring the default disposition of SIGPIPE before any thread is started.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // The daemon logs what it schedules and how jobs end; commands only warn.
    let default_filter = if matches!(cli.command, cli::Command::Daemon(_)) {
        "info,opendal=error"
    } else {
        "warn,opendal=error"
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("HOLDFAST_LOG")
                .unwrap_or_else(|_| default_filter.into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let json = cli.json;
    let code = match commands::run(cli) {
        Ok(code) => code,
        Err(e) => {
            if json {
                println!(
                    "{}",
                    serde_json::json!({"error": {"kind": e.kind(), "message": e.to_string(), "hint": exit::hint(&e), "retryable": e.retryable(), "exit_code": exit::code(&e)}})
                );
            }
            eprintln!("{}", exit::render(&e));
            exit::code(&e)
        }
    };
    std::process::exit(code);
}
