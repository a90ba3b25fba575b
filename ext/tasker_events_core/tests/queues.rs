//! The queue inspector against a real PostgreSQL: metrics of the `*_domain_events` queues,
//! pages of one queue table read without consuming, and the errors an operator sees for a
//! missing queue or a database without PGMQ.
//!
//! One test starts the cluster and runs every scenario in turn (starting a cluster takes
//! seconds); each scenario uses queues of its own.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use sqlx::PgPool;
use tasker_events_core::durable::install_pgmq;
use tasker_events_core::names::queue_name;
use tasker_events_core::queues::{Cancel, Position, QueueError, QueueInspector};
use tokio::runtime::Runtime;

use support::{inspection_pool, run_suffix, TestDatabase};

const PATIENCE: Duration = Duration::from_secs(10);

/// The database, a runtime and pool of the test's own to set rows up and check them, and the
/// inspector under test.
struct Harness {
    // Fields drop in order: connections close before the cluster stops.
    inspector: QueueInspector,
    pool: PgPool,
    runtime: Runtime,
    suffix: String,
    database: TestDatabase,
}

impl Harness {
    fn new() -> Self {
        let database = TestDatabase::start();
        let (runtime, pool) = inspection_pool(&database);
        runtime.block_on(install_pgmq(&pool)).expect("install PGMQ");
        let inspector = QueueInspector::connect(database.url(), PATIENCE, &Cancel::new())
            .expect("the inspector connects");
        Self {
            inspector,
            pool,
            runtime,
            suffix: run_suffix(),
            database,
        }
    }

    fn namespace(&self, name: &str) -> String {
        format!("{name}_{}", self.suffix)
    }

    fn sql(&self, sql: &str, queue: &str) {
        self.runtime.block_on(async {
            sqlx::query(sql)
                .bind(queue)
                .execute(&self.pool)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        });
    }

    /// Sends `message` with `headers` and returns its msg_id.
    fn send(&self, queue: &str, message: &Value, headers: &Value) -> i64 {
        self.runtime.block_on(async {
            sqlx::query_scalar("SELECT pgmq.send($1, $2, $3)")
                .bind(queue)
                .bind(message)
                .bind(headers)
                .fetch_one(&self.pool)
                .await
                .expect("pgmq.send")
        })
    }

    fn read_counts(&self, queue: &str) -> Vec<i32> {
        // The name comes from a validated namespace, so it is safe to format in.
        let sql = format!("SELECT read_ct FROM pgmq.q_{queue} ORDER BY msg_id");
        self.runtime.block_on(async {
            sqlx::query_scalar(&sql)
                .fetch_all(&self.pool)
                .await
                .unwrap()
        })
    }

    fn pgmq_read(&self, queue: &str) -> Vec<i64> {
        self.runtime.block_on(async {
            sqlx::query_scalar("SELECT msg_id FROM pgmq.read($1, 30, 100)")
                .bind(queue)
                .fetch_all(&self.pool)
                .await
                .unwrap()
        })
    }

    /// The test's database URL with another database name, for a database without PGMQ.
    fn url_of_database(&self, name: &str) -> String {
        let url = self.database.url();
        let (base, query) = url
            .split_once('?')
            .map_or((url, None), |(b, q)| (b, Some(q)));
        let authority_end = base
            .find("://")
            .map(|scheme| scheme + 3)
            .and_then(|start| base[start..].find('/').map(|slash| start + slash))
            .unwrap_or(base.len());
        let mut result = format!("{}/{name}", &base[..authority_end]);
        if let Some(query) = query {
            result = format!("{result}?{query}");
        }
        result
    }
}

type Scenario = (&'static str, fn(&Harness));

#[test]
fn queue_inspector_against_postgresql() {
    let harness = Harness::new();
    let scenarios: [Scenario; 4] = [
        (
            "queues lists domain-event queues with PGMQ's metrics",
            lists_queues_with_metrics,
        ),
        (
            "peek reads pages in msg_id order without consuming",
            peek_does_not_consume,
        ),
        (
            "a missing queue names the queues that exist",
            missing_queue_lists_existing,
        ),
        ("a database without PGMQ says so", database_without_pgmq),
    ];
    for (name, scenario) in scenarios {
        eprintln!("scenario: {name}");
        scenario(&harness);
    }
}

fn lists_queues_with_metrics(harness: &Harness) {
    let namespace = harness.namespace("listed");
    let queue = queue_name(&namespace);
    let other = format!("other_{}", harness.suffix);
    harness.sql("SELECT pgmq.create($1)", &queue);
    harness.sql("SELECT pgmq.create($1)", &other);
    for n in 0..3 {
        harness.send(&queue, &json!({ "n": n }), &json!({}));
    }
    let consumed = harness.pgmq_read(&queue)[0];
    harness.runtime.block_on(async {
        sqlx::query("SELECT pgmq.delete($1, $2)")
            .bind(&queue)
            .bind(consumed)
            .execute(&harness.pool)
            .await
            .unwrap();
    });

    let queues = harness.inspector.queues(&Cancel::new()).unwrap();
    assert!(
        queues
            .iter()
            .all(|q| q.queue_name.ends_with("_domain_events")),
        "{queues:?}"
    );
    let listed = queues
        .iter()
        .find(|q| q.queue_name == queue)
        .expect("listed");
    assert_eq!(listed.namespace, namespace);
    assert_eq!(listed.queue_length, 2);
    assert_eq!(
        listed.total_messages, 3,
        "deleted messages still count as sent"
    );
    assert!(matches!(listed.oldest_msg_age_sec, Some(age) if (0..60).contains(&age)));
    assert!(listed.newest_msg_age_sec <= listed.oldest_msg_age_sec);

    harness.sql("SELECT pgmq.drop_queue($1)", &queue);
    harness.sql("SELECT pgmq.drop_queue($1)", &other);
}

fn peek_does_not_consume(harness: &Harness) {
    let namespace = harness.namespace("peeked");
    let queue = queue_name(&namespace);
    harness.sql("SELECT pgmq.create($1)", &queue);
    let ids: Vec<i64> = (0..4)
        .map(|n| harness.send(&queue, &json!({ "n": n }), &json!({ "h": n })))
        .collect();

    let cancel = Cancel::new();
    let latest = harness
        .inspector
        .peek(&namespace, Position::Latest, 2, &cancel)
        .unwrap();
    let latest_ids: Vec<i64> = latest.iter().map(|m| m.msg_id).collect();
    assert_eq!(latest_ids, ids[2..], "the newest rows, oldest first");
    assert_eq!(latest[1].message, json!({ "n": 3 }));
    assert_eq!(latest[1].headers, json!({ "h": 3 }));
    assert_eq!(latest[1].read_ct, 0);
    assert!(
        latest[1].enqueued_at.ends_with('Z'),
        "{}",
        latest[1].enqueued_at
    );

    let page = harness
        .inspector
        .peek(&namespace, Position::After(ids[0]), 2, &cancel)
        .unwrap();
    let page_ids: Vec<i64> = page.iter().map(|m| m.msg_id).collect();
    assert_eq!(page_ids, ids[1..3]);
    let rest = harness
        .inspector
        .peek(&namespace, Position::After(ids[3]), 10, &cancel)
        .unwrap();
    assert!(rest.is_empty(), "{rest:?}");

    assert_eq!(harness.read_counts(&queue), [0, 0, 0, 0]);
    assert_eq!(
        harness.pgmq_read(&queue),
        ids,
        "every message is still visible"
    );
    harness.sql("SELECT pgmq.drop_queue($1)", &queue);
}

fn missing_queue_lists_existing(harness: &Harness) {
    let existing = queue_name(&harness.namespace("exists"));
    harness.sql("SELECT pgmq.create($1)", &existing);

    let missing = harness.namespace("absent");
    let error = harness
        .inspector
        .peek(&missing, Position::Latest, 10, &Cancel::new())
        .unwrap_err();
    match &error {
        QueueError::Missing {
            queue,
            existing: listed,
        } => {
            assert_eq!(queue, &queue_name(&missing));
            assert!(listed.contains(&existing), "{listed:?}");
        }
        other => panic!("expected Missing, got {other:?}"),
    }
    assert!(error.to_string().contains(&existing), "{error}");

    let invalid = harness
        .inspector
        .peek(
            "x\"; drop table pgmq.meta; --",
            Position::Latest,
            10,
            &Cancel::new(),
        )
        .unwrap_err();
    assert!(matches!(invalid, QueueError::Namespace(_)), "{invalid:?}");
    harness.sql("SELECT pgmq.drop_queue($1)", &existing);
}

fn database_without_pgmq(harness: &Harness) {
    let name = format!("no_pgmq_{}", harness.suffix);
    // CREATE DATABASE takes no parameters; the name is made of digits and underscores.
    let create = format!("CREATE DATABASE {name}");
    harness.runtime.block_on(async {
        sqlx::query(&create).execute(&harness.pool).await.unwrap();
    });

    let url = harness.url_of_database(&name);
    let inspector = QueueInspector::connect(&url, PATIENCE, &Cancel::new()).unwrap();
    let listed = inspector.queues(&Cancel::new()).unwrap_err();
    assert!(
        matches!(listed, QueueError::NotInstalled { .. }),
        "{listed:?}"
    );
    let peeked = inspector
        .peek("payments", Position::Latest, 1, &Cancel::new())
        .unwrap_err();
    assert!(
        matches!(peeked, QueueError::NotInstalled { .. }),
        "{peeked:?}"
    );
    drop(inspector);

    let drop_database = format!("DROP DATABASE {name}");
    harness.runtime.block_on(async {
        sqlx::query(&drop_database)
            .execute(&harness.pool)
            .await
            .unwrap();
    });
}
