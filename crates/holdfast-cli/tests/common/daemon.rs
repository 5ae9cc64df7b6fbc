//! Helpers for the daemon tests: a free port, one-shot HTTP requests, a webhook receiver, an
//! SMTP sink, a running `holdfast daemon`, the catalog and vault as the CLI reports them, and
//! promtool.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Env, stderr};

pub const TOKEN: &str = "s3cret-api-token";

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One HTTP/1.1 request; returns (status, body).
pub fn http(port: u16, method: &str, path: &str, token: Option<&str>) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: localhost\r\n{auth}Content-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    // Chunked bodies: strip the chunk sizes (small bodies come in one chunk).
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        while let Some((size, tail)) = rest.split_once("\r\n") {
            let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n.min(tail.len())]);
            rest = tail.get(n + 2..).unwrap_or("");
        }
        out
    } else {
        body.to_string()
    };
    (status, body)
}

/// A webhook receiver recording every JSON body it gets.
pub struct Receiver {
    pub port: u16,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Receiver {
    pub fn start() -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = l.local_addr().unwrap().port();
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let b = bodies.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { continue };
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                let body = loop {
                    let n = s.read(&mut tmp).unwrap_or(0);
                    if n == 0 {
                        break None;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    let text = String::from_utf8_lossy(&buf).into_owned();
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let len = head
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if body.len() >= len {
                            break Some(body[..len].to_string());
                        }
                    }
                };
                let _ = s.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
                if let Some(body) = body
                    && let Ok(v) = serde_json::from_str(&body)
                {
                    b.lock().unwrap().push(v);
                }
            }
        });
        Receiver { port, bodies }
    }

    pub fn events(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap().clone()
    }
}

/// One raw HTTP/1.1 exchange: `head` is the request line and headers (without the blank
/// line), `body` follows it. Returns (status, body); a connection the server closed
/// without an answer gives status 0.
pub fn http_raw(port: u16, head: &str, body: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let _ = s.write_all(format!("{head}\r\n\r\n").as_bytes());
    let _ = s.write_all(body);
    let mut buf = Vec::new();
    let mut tmp = [0u8; 8192];
    loop {
        match s.read(&mut tmp) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&tmp[..n]),
        }
    }
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map_or("", |x| x.1).to_string();
    (status, body)
}

/// A metric's value in a Prometheus text exposition (the first sample named `name`).
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.rsplit_once(' ')?;
        (n == name).then(|| v.parse().ok())?
    })
}

/// Read one HTTP request from `s`; its body (by Content-Length).
fn read_request(s: &mut TcpStream) -> Option<String> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    loop {
        let n = s.read(&mut tmp).unwrap_or(0);
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&tmp[..n]);
        let text = String::from_utf8_lossy(&buf).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let len = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse::<usize>().ok())?
                })
                .unwrap_or(0);
            if body.len() >= len {
                return Some(body[..len].to_string());
            }
        }
    }
}

/// A webhook on a chosen port that answers the status it is set to, counts every request
/// and records the JSON bodies it answered with a 2xx; stopped (port closed) when dropped.
pub struct Webhook {
    pub port: u16,
    status: Arc<std::sync::atomic::AtomicU16>,
    hits: Arc<std::sync::atomic::AtomicUsize>,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
    stop: Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Webhook {
    pub fn start_on(port: u16, status: u16) -> Webhook {
        use std::sync::atomic::Ordering;
        let end = Instant::now() + Duration::from_secs(10);
        let l = loop {
            match TcpListener::bind(("127.0.0.1", port)) {
                Ok(l) => break l,
                Err(e) if Instant::now() < end => {
                    eprintln!("bind {port}: {e}; retrying");
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => panic!("cannot bind the webhook port {port}: {e}"),
            }
        };
        l.set_nonblocking(true).unwrap();
        let status = Arc::new(std::sync::atomic::AtomicU16::new(status));
        let hits: Arc<std::sync::atomic::AtomicUsize> = Arc::default();
        let bodies: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
        let stop: Arc<std::sync::atomic::AtomicBool> = Arc::default();
        let (st, h, b, halt) = (status.clone(), hits.clone(), bodies.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !halt.load(Ordering::SeqCst) {
                let mut s = match l.accept() {
                    Ok((s, _)) => s,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(20));
                        continue;
                    }
                };
                let _ = s.set_nonblocking(false);
                let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
                let body = read_request(&mut s);
                let code = st.load(Ordering::SeqCst);
                h.fetch_add(1, Ordering::SeqCst);
                let _ = write!(
                    s,
                    "HTTP/1.1 {code} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                );
                if (200..300).contains(&code)
                    && let Some(v) = body.and_then(|t| serde_json::from_str(&t).ok())
                {
                    b.lock().unwrap().push(v);
                }
            }
        });
        Webhook {
            port,
            status,
            hits,
            bodies,
            stop,
            thread: Some(thread),
        }
    }

    pub fn set_status(&self, code: u16) {
        self.status.store(code, std::sync::atomic::Ordering::SeqCst);
    }

    /// Requests received (whatever they were answered).
    pub fn hits(&self) -> usize {
        self.hits.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// The JSON bodies answered with a 2xx (delivered notifications).
    pub fn events(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap().clone()
    }
}

impl Drop for Webhook {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A running `holdfast daemon`, killed when dropped.
pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    pub fn start(env: &Env, plan: &Path, log: &Path) -> Daemon {
        Self::start_with_umask(env, plan, log, None)
    }

    /// [`Daemon::start`] with the daemon's umask set (None: inherited). The log is appended
    /// to, so a restarted daemon keeps its predecessor's lines.
    pub fn start_with_umask(env: &Env, plan: &Path, log: &Path, umask: Option<u32>) -> Daemon {
        use std::os::unix::process::CommandExt;
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .unwrap();
        let mut cmd = env.std_cmd();
        if let Some(mask) = umask {
            // SAFETY: umask(2) is async-signal-safe.
            unsafe {
                cmd.pre_exec(move || {
                    libc::umask(mask as libc::mode_t);
                    Ok(())
                });
            }
        }
        let child = cmd
            .args(["daemon", "--plan", plan.to_str().unwrap()])
            .env("HOLDFAST_API_TOKEN", TOKEN)
            .env("HOLDFAST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(f)
            .spawn()
            .unwrap();
        Daemon {
            child,
            log: log.to_path_buf(),
        }
    }

    /// Wait until the daemon answers `/healthz` on `port` (panics with its log if not).
    pub fn wait_healthy(&mut self, port: u16) {
        let end = Instant::now() + Duration::from_secs(30);
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                panic!("the daemon exited ({s}):\n{}", self.log());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && http(port, "GET", "/healthz", None).0 == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the daemon did not answer /healthz:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.child.id() as i32), sig).unwrap();
    }

    /// Wait for the process to end; its exit code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s.code();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("the daemon did not stop within {limit:?}:\n{}", self.log());
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait_until(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out waiting for {what}");
}

pub fn jobs(env: &Env, state: &Path) -> Vec<serde_json::Value> {
    if !state.join("catalog.sqlite").exists() {
        return vec![];
    }
    let v = env.json(&[
        "jobs",
        "--state-dir",
        state.to_str().unwrap(),
        "--limit",
        "0",
    ]);
    v.as_array().cloned().unwrap_or_default()
}

pub fn points(env: &Env, vault: &Path, resource: &str) -> Vec<serde_json::Value> {
    let o = env
        .cmd()
        .args([
            "--json",
            "--vault",
            vault.to_str().unwrap(),
            "points",
            "--resource",
            resource,
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice::<serde_json::Value>(&o.stdout)
        .unwrap()
        .as_array()
        .cloned()
        .unwrap()
}

/// Two vaults (same test passphrase, in a file) and the plan header.
pub fn setup(env: &Env, daemon_extra: &str) -> (PathBuf, PathBuf, PathBuf, u16, String) {
    let main = env.path("main");
    let dr = env.path("dr");
    for v in [&main, &dr] {
        env.ok(&["--vault", v.to_str().unwrap(), "init"]);
    }
    let pass = env.path("pass");
    std::fs::write(&pass, "correct horse\n").unwrap();
    let state = env.path("state");
    let port = free_port();
    let head = format!(
        r#"[daemon]
state_dir = "{state}"
listen = "127.0.0.1:{port}"
api_token_env = "HOLDFAST_API_TOKEN"
retry_backoff = "1s"
shutdown_grace = "2s"
max_jobs = 3
{daemon_extra}

[vaults.main]
url = "{main}"
passphrase_file = "{pass}"

[vaults.dr]
url = "{dr}"
passphrase_file = "{pass}"
"#,
        state = state.display(),
        main = main.display(),
        dr = dr.display(),
        pass = pass.display()
    );
    (main, dr, state, port, head)
}

pub fn promtool_check(metrics: &str) {
    let Ok(mut c) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var_os("CI").is_none(),
            "promtool is not installed (apt-get install prometheus)"
        );
        eprintln!("promtool not found: metrics not validated (CI installs it)");
        return;
    };
    c.stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let o = c.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "promtool check metrics failed:\n{}{}\n{metrics}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A loopback SMTP server recording each message's DATA.
pub fn smtp_server() -> (u16, Arc<Mutex<Vec<String>>>) {
    use std::io::BufRead;
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let mails = Arc::new(Mutex::new(Vec::new()));
    let m = mails.clone();
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut w) = s else { continue };
            let mut r = std::io::BufReader::new(w.try_clone().unwrap());
            let _ = w.write_all(b"220 test ESMTP\r\n");
            let mut line = String::new();
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let cmd = line.trim_end().to_ascii_uppercase();
                if cmd.starts_with("EHLO") || cmd.starts_with("HELO") {
                    let _ = w.write_all(b"250-test\r\n250 8BITMIME\r\n");
                } else if cmd.starts_with("DATA") {
                    let _ = w.write_all(b"354 go ahead\r\n");
                    let mut data = String::new();
                    loop {
                        line.clear();
                        if r.read_line(&mut line).unwrap_or(0) == 0 || line == ".\r\n" {
                            break;
                        }
                        data.push_str(&line);
                    }
                    m.lock().unwrap().push(data);
                    let _ = w.write_all(b"250 queued\r\n");
                } else if cmd.starts_with("QUIT") {
                    let _ = w.write_all(b"221 bye\r\n");
                    break;
                } else {
                    let _ = w.write_all(b"250 OK\r\n");
                }
            }
        }
    });
    (port, mails)
}
