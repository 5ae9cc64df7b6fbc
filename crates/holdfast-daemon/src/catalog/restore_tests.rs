//! Restore-test jobs in the catalog: one `restore_test` job per resource a test covers, with
//! the test's name in the `test` column; the newest result of each (test, resource) pair for
//! `/metrics`; the latest scheduled time a test served, for the scheduler's catch-up.

use rusqlite::params;

use super::{Catalog, CatalogError, Filter, JobRecord};
use crate::job::{JobKind, JobState};

/// The newest finished run of one restore test against one resource.
#[derive(Debug, Clone)]
pub struct TestResult {
    /// The newest finished job (completed, failed or expired).
    pub last: JobRecord,
    /// When its newest passing run ended (Unix ns).
    pub last_success_ns: Option<i64>,
}

impl Catalog {
    /// Record a new `restore_test` job of test `test` against `resource` in `vault`.
    pub fn create_test(
        &self,
        test: &str,
        resource: &str,
        vault: &str,
        trigger: &str,
        scheduled_ns: Option<i64>,
        now_ns: i64,
    ) -> Result<i64, CatalogError> {
        self.with(|c| {
            c.execute(
                "INSERT INTO jobs (kind, resource, vault, state, trigger, scheduled_ns, created_ns, pid, test)
                 VALUES (?1, ?2, ?3, 'created', ?4, ?5, ?6, ?7, ?8)",
                params![
                    JobKind::RestoreTest.as_str(),
                    resource,
                    vault,
                    trigger,
                    scheduled_ns,
                    now_ns,
                    std::process::id(),
                    test
                ],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// The latest scheduled time a job of restore test `test` served.
    pub fn last_scheduled_test(&self, test: &str) -> Result<Option<i64>, CatalogError> {
        self.last_scheduled_of(&Filter {
            kind: Some(JobKind::RestoreTest),
            test: Some(test.to_string()),
            ..Filter::default()
        })
    }

    /// Per (test, resource): the newest finished job and when the newest passing one ended,
    /// ordered by test and resource.
    pub fn test_results(&self) -> Result<Vec<TestResult>, CatalogError> {
        let kind = JobKind::RestoreTest.as_str();
        let newest: Vec<(i64, Option<i64>)> = self.with(|c| {
            let mut st = c.prepare(
                "SELECT MAX(id),
                   (SELECT MAX(s.ended_ns) FROM jobs s WHERE s.kind = ?1 AND s.state = ?2
                      AND s.test = j.test AND s.resource = j.resource)
                 FROM jobs j WHERE kind = ?1 AND test IS NOT NULL AND state IN (?2, ?3, ?4)
                 GROUP BY test, resource ORDER BY test, resource",
            )?;
            let rows = st.query_map(
                params![
                    kind,
                    JobState::Completed.as_str(),
                    JobState::Failed.as_str(),
                    JobState::Expired.as_str()
                ],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )?;
            rows.collect()
        })?;
        let mut out = Vec::with_capacity(newest.len());
        for (id, last_success_ns) in newest {
            if let Some(last) = self.get(id)? {
                out.push(TestResult {
                    last,
                    last_success_ns,
                });
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_are_the_newest_per_test_and_resource() {
        let dir = tempfile::tempdir().unwrap();
        let c = Catalog::open(dir.path()).unwrap();
        let job = |test: &str, r: &str, state: JobState, at: i64| {
            let j = c
                .create_test(test, r, "main", "schedule", Some(at), at)
                .unwrap();
            c.finish(j, state, None, None, None, None, at + 1).unwrap();
            j
        };
        job("nightly", "db", JobState::Completed, 10);
        let failed = job("nightly", "db", JobState::Failed, 20);
        let ok = job("nightly", "docs", JobState::Completed, 30);
        job("weekly", "db", JobState::Completed, 40);
        // Still running: not a result yet.
        c.create_test("weekly", "db", "main", "api", None, 50)
            .unwrap();
        let r = c.test_results().unwrap();
        let seen: Vec<(String, String, i64, Option<i64>)> = r
            .iter()
            .map(|t| {
                (
                    t.last.test.clone().unwrap(),
                    t.last.resource.clone(),
                    t.last.id,
                    t.last_success_ns,
                )
            })
            .collect();
        assert_eq!(
            seen,
            vec![
                ("nightly".into(), "db".into(), failed, Some(11)),
                ("nightly".into(), "docs".into(), ok, Some(31)),
                ("weekly".into(), "db".into(), 4, Some(41)),
            ]
        );
        assert_eq!(c.last_scheduled_test("nightly").unwrap(), Some(30));
        assert_eq!(c.last_scheduled_test("weekly").unwrap(), Some(40));
        assert_eq!(c.last_scheduled_test("other").unwrap(), None);
        assert_eq!(r[0].last.kind, JobKind::RestoreTest);
    }

    #[test]
    fn a_version_3_catalog_gains_the_test_column_and_keeps_its_jobs() {
        let dir = tempfile::tempdir().unwrap();
        {
            let c = rusqlite::Connection::open(dir.path().join("catalog.sqlite")).unwrap();
            // The jobs table as version 3 made it.
            c.execute_batch(
                "CREATE TABLE jobs (id INTEGER PRIMARY KEY AUTOINCREMENT, kind TEXT NOT NULL,
                 resource TEXT NOT NULL, vault TEXT NOT NULL, state TEXT NOT NULL,
                 trigger TEXT NOT NULL, scheduled_ns INTEGER, created_ns INTEGER NOT NULL,
                 started_ns INTEGER, ended_ns INTEGER, attempts INTEGER NOT NULL DEFAULT 0,
                 bytes_added INTEGER, point TEXT, point_ns INTEGER, message TEXT,
                 parent INTEGER REFERENCES jobs(id), pid INTEGER, progress_bytes INTEGER,
                 report TEXT);
                 INSERT INTO jobs (kind, resource, vault, state, trigger, created_ns)
                 VALUES ('backup', 'db', 'main', 'completed', 'manual', 5);
                 PRAGMA user_version = 3;",
            )
            .unwrap();
        }
        let c = Catalog::open(dir.path()).unwrap();
        let old = c.get(1).unwrap().unwrap();
        assert_eq!((old.kind, old.test), (JobKind::Backup, None));
        let j = c
            .create_test("nightly", "db", "main", "api", None, 9)
            .unwrap();
        assert_eq!(c.get(j).unwrap().unwrap().test.as_deref(), Some("nightly"));
    }
}
