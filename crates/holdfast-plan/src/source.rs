//! A resource resolved into what its kind backs up: the one place that reads a resource's
//! kind-specific keys (`paths`, `url_env`/`url_file`/`url`, `path`, `command`, …). `plan
//! check` has refused a resource whose kind misses a key it needs, so a checked plan always
//! resolves.

use crate::model::{Kind, Resource};

/// Where a database or bucket connection (URL) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Connection<'a> {
    /// This environment variable of the daemon (`url_env`).
    Env(&'a str),
    /// The first line of this file (`url_file`).
    File(&'a str),
    /// Written in the plan (`url`; only without a password).
    Literal(&'a str),
}

/// What a resource backs up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source<'a> {
    /// Files and folders, minus the excludes.
    Files {
        /// What to back up.
        paths: &'a [String],
        /// Globs to skip.
        exclude: &'a [String],
    },
    /// A logical dump of a PostgreSQL server (every database and the globals).
    Postgres {
        /// The server.
        conn: Connection<'a>,
    },
    /// A physical base backup of a PostgreSQL cluster (its WAL arrives by `archive_command`).
    PostgresBase {
        /// The server.
        conn: Connection<'a>,
    },
    /// A logical dump of a MariaDB/MySQL server.
    Mysql {
        /// The server.
        conn: Connection<'a>,
    },
    /// An online copy of a SQLite database.
    Sqlite {
        /// The database file.
        path: &'a str,
    },
    /// A command's standard output, stored as one file.
    Command {
        /// The command line.
        line: &'a str,
        /// The stored file's name.
        name: &'a str,
    },
    /// The objects under an S3 bucket/prefix, with their metadata.
    S3 {
        /// `s3://BUCKET/PREFIX`.
        url: &'a str,
        /// The bucket's endpoint (default: the environment's).
        endpoint: Option<&'a str>,
    },
}

/// The stored file name of a command resource without `name`.
pub const DEFAULT_COMMAND_NAME: &str = "command.out";

impl Resource {
    /// The connection of a database or bucket resource.
    pub fn connection(&self) -> Connection<'_> {
        if let Some(v) = &self.url_env {
            Connection::Env(v)
        } else if let Some(f) = &self.url_file {
            Connection::File(f)
        } else {
            Connection::Literal(self.url.as_ref().map_or("", |u| u.get_ref().as_str()))
        }
    }

    /// What this resource backs up, by its kind.
    pub fn source(&self) -> Source<'_> {
        match *self.kind.get_ref() {
            Kind::Files => Source::Files {
                paths: &self.paths,
                exclude: &self.exclude,
            },
            Kind::Postgres => Source::Postgres {
                conn: self.connection(),
            },
            Kind::PostgresBase => Source::PostgresBase {
                conn: self.connection(),
            },
            Kind::Mysql => Source::Mysql {
                conn: self.connection(),
            },
            Kind::Sqlite => Source::Sqlite {
                path: self.path.as_deref().unwrap_or(""),
            },
            Kind::Command => Source::Command {
                line: self.command.as_ref().map_or("", |c| c.get_ref().as_str()),
                name: self.name.as_deref().unwrap_or(DEFAULT_COMMAND_NAME),
            },
            Kind::S3 => Source::S3 {
                url: self.url.as_ref().map_or("", |u| u.get_ref().as_str()),
                endpoint: self.endpoint.as_deref(),
            },
        }
    }
}
