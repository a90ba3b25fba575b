//! The durable path against a real PostgreSQL with PGMQ installed as plain SQL.
//!
//! Starting a cluster takes seconds, so one test starts it and runs every scenario that needs
//! it in turn; the cluster stops when that test ends, whether it passed or not. Each scenario
//! writes to namespaces of its own. The test for an unreachable database needs no cluster.

mod support;

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sqlx::PgPool;
use tasker_events_core::bus::HandlerFuture;
use tasker_events_core::durable::install_pgmq;
use tasker_events_core::names::queue_name;
use tasker_events_core::{
    Config, DomainEvent, EventDeliveryMode, EventHandler, EventSystem, NewEvent, Stats,
};
use tokio::runtime::Runtime;
use uuid::Uuid;

use support::{inspection_pool, run_suffix, TestDatabase};

/// Long enough for a loaded CI machine, short enough that a hang fails the test quickly.
const PATIENCE: Duration = Duration::from_secs(20);

/// What the scenarios share: the database, and a runtime and pool of the test's own for
/// inspecting it (the event system runs its own runtime and must not be entered from one).
struct Harness {
    // Fields drop in order: the pool's connections close before the cluster stops.
    pool: PgPool,
    runtime: Runtime,
    suffix: String,
    database: TestDatabase,
}

impl Harness {
    fn new() -> Self {
        let database = TestDatabase::start();
        let (runtime, pool) = inspection_pool(&database);
        Self {
            pool,
            runtime,
            suffix: run_suffix(),
            database,
        }
    }

    /// A namespace no other scenario (or earlier run) writes to.
    fn namespace(&self, name: &str) -> String {
        format!("{name}_{}", self.suffix)
    }

    fn start(&self, config: Config) -> EventSystem {
        let config = Config {
            database_url: Some(self.database.url().to_owned()),
            install_pgmq: true,
            ..config
        };
        EventSystem::start(config, Arc::new(Stats::new())).expect("event system starts")
    }

    /// `(msg_id, message, headers)` of every row in a namespace's queue, oldest first; empty
    /// when the queue was never created.
    fn rows(&self, namespace: &str) -> Vec<(i64, Value, Value)> {
        let table = format!("pgmq.q_{}", queue_name(namespace));
        self.runtime.block_on(async {
            let exists: bool = sqlx::query_scalar("SELECT to_regclass($1) IS NOT NULL")
                .bind(&table)
                .fetch_one(&self.pool)
                .await
                .unwrap();
            if !exists {
                return Vec::new();
            }
            // The name comes from a validated namespace, so it is safe to format in.
            let sql = format!("SELECT msg_id, message, headers FROM {table} ORDER BY msg_id");
            sqlx::query_as(&sql).fetch_all(&self.pool).await.unwrap()
        })
    }

    /// Drops the queues a scenario created, so that a shared database does not fill up.
    fn drop_queues(&self, namespaces: &[&str]) {
        self.runtime.block_on(async {
            for namespace in namespaces {
                sqlx::query(
                    "SELECT pgmq.drop_queue(queue_name) FROM pgmq.meta WHERE queue_name = $1",
                )
                .bind(queue_name(namespace))
                .execute(&self.pool)
                .await
                .unwrap();
            }
        });
    }
}

fn flush(system: &EventSystem) {
    assert!(
        system.flush(PATIENCE, &|| false),
        "flush timed out: {:?}",
        system.stats().snapshot()
    );
}

fn sorted_keys(value: &Value) -> Vec<&str> {
    let keys: BTreeSet<&str> = value
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.into_iter().collect()
}

/// A subscriber that keeps every event it is given.
fn recorder() -> (EventHandler, Arc<Mutex<Vec<Arc<DomainEvent>>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let handler: EventHandler = Arc::new(move |event| -> HandlerFuture {
        sink.lock().unwrap().push(event);
        Box::pin(async { Ok(()) })
    });
    (handler, seen)
}

/// A scenario of the shared-cluster test, and the name it reports when it starts.
type Scenario = (&'static str, fn(&Harness));

#[test]
fn durable_path_against_postgresql() {
    let harness = Harness::new();
    let scenarios: [Scenario; 6] = [
        (
            "the system installs PGMQ and writes the envelope",
            writes_the_documented_envelope,
        ),
        ("install_pgmq is idempotent", install_pgmq_twice),
        ("fast events never reach PGMQ", fast_events_write_nothing),
        (
            "broadcast events reach PGMQ and subscribers",
            broadcast_writes_and_delivers,
        ),
        (
            "2,000 events keep per-namespace order",
            many_events_keep_order_per_namespace,
        ),
        (
            "an event PostgreSQL refuses is dropped alone",
            refused_event_is_dropped_alone,
        ),
    ];
    for (name, scenario) in scenarios {
        eprintln!("scenario: {name}");
        scenario(&harness);
    }
}

fn writes_the_documented_envelope(harness: &Harness) {
    let namespace = harness.namespace("payments");
    let system = harness.start(Config::default());
    let (task, step, correlation) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
    let event = NewEvent {
        task_uuid: Some(task),
        step_uuid: Some(step),
        step_name: Some("charge_card".into()),
        correlation_id: Some(correlation),
        fired_by: Some("payment_step_handler".into()),
        extra_metadata: json!({"region": "eu"}).as_object().unwrap().clone(),
        execution_result: Some(json!({"success": true, "duration_ms": 42})),
        ..NewEvent::new(
            "payment.processed",
            &namespace,
            json!({"amount": 99.99, "currency": "EUR"}),
        )
    };
    let id = system
        .publish(event)
        .unwrap()
        .expect("durable event accepted");
    flush(&system);

    let rows = harness.rows(&namespace);
    assert_eq!(rows.len(), 1, "{rows:?}");
    let (_, message, headers) = &rows[0];
    assert_eq!(
        sorted_keys(message),
        [
            "delivery_mode",
            "event_id",
            "event_name",
            "event_version",
            "execution_result",
            "metadata",
            "payload",
        ]
    );
    assert_eq!(message["event_id"], id.to_string());
    assert_eq!(message["event_name"], "payment.processed");
    assert_eq!(message["event_version"], "1.0");
    assert_eq!(message["delivery_mode"], "durable");
    assert_eq!(
        message["payload"],
        json!({"amount": 99.99, "currency": "EUR"})
    );
    assert_eq!(
        message["execution_result"],
        json!({"success": true, "duration_ms": 42})
    );

    let metadata = &message["metadata"];
    assert_eq!(metadata["namespace"], namespace.as_str());
    assert_eq!(metadata["task_uuid"], task.to_string());
    assert_eq!(metadata["step_uuid"], step.to_string());
    assert_eq!(metadata["step_name"], "charge_card");
    assert_eq!(metadata["correlation_id"], correlation.to_string());
    assert_eq!(metadata["fired_by"], "payment_step_handler");
    assert_eq!(metadata["region"], "eu");
    assert!(
        metadata["fired_at"]
            .as_str()
            .is_some_and(|at| at.ends_with('Z')),
        "{metadata}"
    );

    assert_eq!(
        sorted_keys(headers),
        ["correlation_id", "event_id", "event_name"]
    );
    assert_eq!(headers["event_id"], id.to_string());
    assert_eq!(headers["event_name"], "payment.processed");
    assert_eq!(headers["correlation_id"], correlation.to_string());

    let stats = system.stats().snapshot();
    assert_eq!((stats.durable.accepted, stats.durable.delivered), (1, 1));
    let no_extension: bool = harness.runtime.block_on(async {
        sqlx::query_scalar("SELECT NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pgmq')")
            .fetch_one(&harness.pool)
            .await
            .unwrap()
    });
    assert!(
        no_extension,
        "PGMQ must be installed as plain SQL, not as an extension"
    );
    assert!(system.shutdown().is_complete());
    harness.drop_queues(&[&namespace]);
}

fn install_pgmq_twice(harness: &Harness) {
    for attempt in 1..=2 {
        let installed = harness.runtime.block_on(install_pgmq(&harness.pool));
        assert!(installed.is_ok(), "install #{attempt}: {installed:?}");
    }
    let queue = queue_name(&harness.namespace("install"));
    let created: bool = harness.runtime.block_on(async {
        sqlx::query("SELECT pgmq.create($1)")
            .bind(&queue)
            .execute(&harness.pool)
            .await
            .unwrap();
        sqlx::query_scalar("SELECT pgmq.drop_queue($1)")
            .bind(&queue)
            .fetch_one(&harness.pool)
            .await
            .unwrap()
    });
    assert!(created, "PGMQ works after a second install");
}

fn fast_events_write_nothing(harness: &Harness) {
    let namespace = harness.namespace("fast");
    let system = harness.start(Config::default());
    let (handler, seen) = recorder();
    system.bus().subscribe("#", handler).unwrap();
    let event = NewEvent::new("order.placed", &namespace, json!({"order": 1}));
    let id = system.publish(event.delivery_mode(EventDeliveryMode::Fast));
    let id = id.unwrap().expect("fast event accepted");
    flush(&system);

    assert!(harness.rows(&namespace).is_empty());
    let seen: Vec<Uuid> = seen.lock().unwrap().iter().map(|e| e.event_id).collect();
    assert_eq!(seen, [id]);
    assert_eq!(system.stats().snapshot().durable.accepted, 0);
    assert!(system.shutdown().is_complete());
}

fn broadcast_writes_and_delivers(harness: &Harness) {
    let namespace = harness.namespace("broadcast");
    let system = harness.start(Config::default());
    let (handler, seen) = recorder();
    system.bus().subscribe("order.*", handler).unwrap();
    let event = NewEvent::new("order.shipped", &namespace, json!({"order": 2}));
    let id = system
        .publish(event.delivery_mode(EventDeliveryMode::Broadcast))
        .unwrap();
    let id = id.expect("broadcast event accepted");
    flush(&system);

    let rows = harness.rows(&namespace);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].1["event_id"], id.to_string());
    assert_eq!(rows[0].1["delivery_mode"], "broadcast");
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].event_id, id, "one event, one id, on both paths");

    let stats = system.stats().snapshot();
    assert_eq!(stats.durable.delivered, 1);
    assert_eq!(stats.rust_subscribers.delivered, 1);
    drop(seen);
    assert!(system.shutdown().is_complete());
    harness.drop_queues(&[&namespace]);
}

fn many_events_keep_order_per_namespace(harness: &Harness) {
    let namespaces = [harness.namespace("orders"), harness.namespace("refunds")];
    // Room for every event at once: this scenario is about order, not backpressure, and the
    // publisher may not have written its first batch before the last event is published.
    let config = Config {
        command_buffer_size: 4096,
        ..Config::default()
    };
    let system = harness.start(config);
    let mut next = [0u64; 2];
    for i in 0..2000u64 {
        // An uneven interleaving, so batches mix the namespaces in changing proportions.
        let which = usize::from(i % 3 == 0);
        let event = NewEvent::new(
            "order.updated",
            &namespaces[which],
            json!({"seq": next[which]}),
        );
        assert!(system.publish(event).unwrap().is_some());
        next[which] += 1;
    }
    flush(&system);

    for (namespace, count) in namespaces.iter().zip(next) {
        let seqs: Vec<u64> = harness
            .rows(namespace)
            .iter()
            .map(|(_, message, _)| message["payload"]["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(seqs, (0..count).collect::<Vec<_>>(), "order in {namespace}");
    }
    let durable = system.stats().snapshot().durable;
    assert_eq!(
        (durable.accepted, durable.delivered, durable.queued),
        (2000, 2000, 0)
    );
    assert!(durable.dropped.values().all(|&n| n == 0), "{durable:?}");
    assert!(system.shutdown().is_complete());
    harness.drop_queues(&[&namespaces[0], &namespaces[1]]);
}

fn refused_event_is_dropped_alone(harness: &Harness) {
    let namespace = harness.namespace("refused");
    // Room for all, so the publisher's first batch can hold the refused event among others.
    let config = Config {
        command_buffer_size: 4096,
        ..Config::default()
    };
    let system = harness.start(config);
    let mut refused = None;
    for seq in 0..50u64 {
        // jsonb cannot store U+0000; PostgreSQL refuses the message with SQLSTATE 22P05.
        let text = if seq == 17 { "nul \u{0} here" } else { "fine" };
        let event = NewEvent::new("order.noted", &namespace, json!({"seq": seq, "text": text}));
        let id = system.publish(event).unwrap().unwrap();
        if seq == 17 {
            refused = Some(id);
        }
    }
    flush(&system);

    let seqs: Vec<u64> = harness
        .rows(&namespace)
        .iter()
        .map(|(_, message, _)| message["payload"]["seq"].as_u64().unwrap())
        .collect();
    let expected: Vec<u64> = (0..50).filter(|&s| s != 17).collect();
    assert_eq!(seqs, expected, "every other event is written, in order");
    let durable = system.stats().snapshot().durable;
    assert_eq!((durable.delivered, durable.queued), (49, 0), "{durable:?}");
    assert_eq!(durable.dropped["database_error"], 1, "{refused:?} dropped");
    assert!(system.shutdown().is_complete());
    harness.drop_queues(&[&namespace]);
}

#[test]
fn unreachable_database_keeps_events_without_blocking_publish() {
    let connect_timeout = Duration::from_millis(500);
    let config = Config {
        // Nothing listens on port 1, so every connection attempt is refused.
        database_url: Some("postgres://postgres@127.0.0.1:1/postgres".into()),
        install_pgmq: true,
        connect_timeout,
        shutdown_drain_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let system = EventSystem::start(config, Arc::new(Stats::new())).expect("start never connects");
    let (handler, seen) = recorder();
    system.bus().subscribe("#", handler).unwrap();

    let started = Instant::now();
    let durable = system.publish(NewEvent::new("payment.processed", "unreachable", json!({})));
    let elapsed = started.elapsed();
    assert!(
        durable.unwrap().is_some(),
        "the durable publisher's channel takes the event"
    );
    assert!(
        elapsed < connect_timeout,
        "publish waited for the database: {elapsed:?}"
    );
    let broadcast = NewEvent::new("payment.settled", "unreachable", json!({}))
        .delivery_mode(EventDeliveryMode::Broadcast);
    let broadcast_id = system.publish(broadcast).unwrap().expect("accepted");

    // The events wait in the durable publisher's buffer while it retries; none is dropped.
    let deadline = Instant::now() + PATIENCE;
    while system.stats().snapshot().rust_subscribers.delivered < 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(connect_timeout * 2);
    let stats = system.stats().snapshot();
    assert_eq!(
        (
            stats.durable.accepted,
            stats.durable.delivered,
            stats.durable.queued
        ),
        (2, 0, 2),
        "{stats:?}"
    );
    assert!(stats.durable.dropped.values().all(|&n| n == 0), "{stats:?}");
    let seen: Vec<_> = seen.lock().unwrap().iter().map(|e| e.event_id).collect();
    assert_eq!(
        seen,
        [broadcast_id],
        "subscribers get broadcast events with the database down"
    );

    // Shutdown cannot write them either: at its deadline they are counted as dropped.
    let report = system.shutdown();
    assert_eq!(report.dropped, 2, "{report:?}");
}
