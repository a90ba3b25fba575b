//! The in-process side of an event system, end to end and without PostgreSQL: routing to Rust
//! subscribers and to the drain queue, isolation of failing subscribers, backpressure,
//! `flush`, durable events without a database, shutdown accounting, and the ready-made
//! subscribers.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tasker_events_core::bus::HandlerFuture;
use tasker_events_core::drain::{Delivery, DrainItem, DrainQueue, Wait};
use tasker_events_core::subscribers::{logging_subscriber, EventMetricsCollector};
use tasker_events_core::{
    Config, DomainEvent, EventDeliveryMode, EventHandler, EventSystem, HandlerError, HostPayload,
    NewEvent, Stats, StatsSnapshot,
};
use tokio::sync::Semaphore;

/// Long enough for a loaded CI machine, short enough that a hang fails the test quickly.
const PATIENCE: Duration = Duration::from_secs(5);

fn start(config: Config) -> EventSystem {
    EventSystem::start(config, Arc::new(Stats::new())).expect("event system starts")
}

fn event(name: &str, seq: u64, mode: EventDeliveryMode) -> NewEvent {
    NewEvent::new(name, "payments", json!({ "seq": seq })).delivery_mode(mode)
}

fn publish_fast(system: &EventSystem, name: &str, seq: u64) {
    let id = system
        .publish(event(name, seq, EventDeliveryMode::Fast))
        .expect("valid event");
    assert!(id.is_some(), "fast event {name} #{seq} was not accepted");
}

fn seq(event: &DomainEvent) -> u64 {
    event.payload["seq"].as_u64().expect("payload has a seq")
}

fn flush(system: &EventSystem) {
    assert!(
        system.flush(PATIENCE, &|| false),
        "flush timed out: {:?}",
        system.stats().snapshot()
    );
}

/// Polls `done` until it holds, failing the test after [`PATIENCE`].
fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(2));
    }
}

/// Wraps an async closure as a subscriber.
fn handler<F, Fut>(f: F) -> EventHandler
where
    F: Fn(Arc<DomainEvent>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), HandlerError>> + Send + 'static,
{
    Arc::new(move |event| -> HandlerFuture { Box::pin(f(event)) })
}

/// A subscriber that keeps every event it is given, in the order it got them.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Arc<DomainEvent>>>>);

impl Recorder {
    fn handler(&self) -> EventHandler {
        let seen = self.0.clone();
        handler(move |event| {
            seen.lock().unwrap().push(event);
            async { Ok(()) }
        })
    }

    fn events(&self) -> Vec<Arc<DomainEvent>> {
        self.0.lock().unwrap().clone()
    }

    fn names_and_seqs(&self) -> Vec<(String, u64)> {
        self.events()
            .iter()
            .map(|e| (e.event_name.clone(), seq(e)))
            .collect()
    }

    fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }
}

/// A subscriber that counts each call, then waits until `gate` has a permit for it.
fn gated(gate: &Arc<Semaphore>, entered: &Arc<AtomicU64>) -> EventHandler {
    let (gate, entered) = (gate.clone(), entered.clone());
    handler(move |_event| {
        let (gate, entered) = (gate.clone(), entered.clone());
        async move {
            entered.fetch_add(1, SeqCst);
            let _permit = gate.acquire().await?;
            Ok(())
        }
    })
}

/// The delivery inside a drain queue item; these tests dispatch no step completions.
fn delivery(item: &DrainItem) -> &Delivery {
    match item {
        DrainItem::Delivery(delivery) => delivery,
        DrainItem::Publish(job) => panic!("unexpected publisher job {job:?}"),
    }
}

/// Takes what the drain queue holds, the way the drain thread does, counting it delivered.
fn drain_all(queue: &DrainQueue, stats: &Stats) -> usize {
    let mut taken = 0;
    loop {
        match queue.wait_batch(100, Some(Duration::from_millis(50))) {
            Wait::Batch(batch) => {
                stats.ruby_subscribers.deliver(batch.len() as u64);
                taken += batch.len();
            }
            Wait::Closed | Wait::TimedOut => return taken,
            Wait::Interrupted => panic!("nobody interrupted the drain queue"),
        }
    }
}

fn assert_counters_add_up(snapshot: &StatsSnapshot) {
    let paths = [
        ("durable", &snapshot.durable),
        ("rust_subscribers", &snapshot.rust_subscribers),
        ("ruby_subscribers", &snapshot.ruby_subscribers),
    ];
    for (name, path) in paths {
        let dropped: u64 = path.dropped.values().sum();
        assert_eq!(path.accepted, path.delivered + dropped, "{name}: {path:?}");
        assert_eq!(path.queued, 0, "{name}: {path:?}");
    }
}

#[test]
fn fast_events_reach_matching_subscribers_in_publish_order() {
    let system = start(Config::default());
    let patterns = ["payment.*", "payment.#", "*.processed", "*"];
    let recorders: Vec<Recorder> = patterns.iter().map(|_| Recorder::default()).collect();
    for (pattern, recorder) in patterns.iter().zip(&recorders) {
        system
            .bus()
            .subscribe(pattern, recorder.handler())
            .expect("valid pattern");
    }

    // Which of `patterns` each name matches, written out rather than computed.
    let names: [(&str, [bool; 4]); 5] = [
        ("payment.processed", [true, true, true, true]),
        ("payment.card.declined", [false, true, false, true]),
        ("order.processed", [false, false, true, true]),
        ("refund.issued", [false, false, false, true]),
        ("payment.refunded", [true, true, false, true]),
    ];
    let mut expected: Vec<Vec<(String, u64)>> = vec![Vec::new(); patterns.len()];
    for seq in 0..200u64 {
        let (name, matches) = names[seq as usize % names.len()];
        publish_fast(&system, name, seq);
        for (wanted, matched) in expected.iter_mut().zip(matches) {
            if matched {
                wanted.push((name.to_owned(), seq));
            }
        }
    }
    flush(&system);

    for ((pattern, recorder), wanted) in patterns.iter().zip(&recorders).zip(&expected) {
        assert_eq!(
            &recorder.names_and_seqs(),
            wanted,
            "subscriber of {pattern}"
        );
    }
    let rust = system.stats().snapshot().rust_subscribers;
    let total: usize = expected.iter().map(Vec::len).sum();
    assert_eq!(
        (rust.accepted, rust.delivered),
        (total as u64, total as u64)
    );
    assert!(system.shutdown().is_complete());
}

#[test]
fn publishing_returns_the_event_id_subscribers_see() {
    let system = start(Config::default());
    let recorder = Recorder::default();
    system
        .bus()
        .subscribe("payment.processed", recorder.handler())
        .unwrap();
    let id = system.publish(event("payment.processed", 0, EventDeliveryMode::Fast));
    let id = id.unwrap().expect("accepted");
    flush(&system);

    let seen = recorder.events();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].event_id, id);
    assert_eq!(seen[0].payload, json!({"seq": 0}));
    assert_eq!(seen[0].delivery_mode, EventDeliveryMode::Fast);
    assert_eq!(seen[0].execution_result, None::<Value>);
    assert!(system.shutdown().is_complete());
}

#[test]
fn unsubscribed_subscriber_gets_nothing_more() {
    let system = start(Config::default());
    let recorder = Recorder::default();
    let id = system
        .bus()
        .subscribe("payment.*", recorder.handler())
        .unwrap();
    publish_fast(&system, "payment.processed", 1);
    flush(&system);

    assert!(system.bus().unsubscribe(id));
    assert!(
        !system.bus().unsubscribe(id),
        "a second unsubscribe finds nothing"
    );
    publish_fast(&system, "payment.processed", 2);
    flush(&system);
    assert_eq!(
        recorder.names_and_seqs(),
        [("payment.processed".to_owned(), 1)]
    );
    assert!(system.shutdown().is_complete());
}

#[test]
fn failing_panicking_and_slow_subscribers_do_not_stop_others() {
    let timeout = Duration::from_millis(100);
    let system = start(Config {
        dispatch_timeout: timeout,
        ..Config::default()
    });
    let calls: [Arc<AtomicU64>; 4] = Default::default();

    let count = calls[0].clone();
    let failing = handler(move |_event| {
        count.fetch_add(1, SeqCst);
        async { Err::<(), HandlerError>("card network unreachable".into()) }
    });
    let count = calls[1].clone();
    let panics_before_future: EventHandler = Arc::new(move |_event| -> HandlerFuture {
        count.fetch_add(1, SeqCst);
        panic!("subscriber panicked before returning its future")
    });
    let count = calls[2].clone();
    let panics_inside_future = handler(move |_event| {
        let count = count.clone();
        async move {
            count.fetch_add(1, SeqCst);
            panic!("subscriber panicked inside its future")
        }
    });
    let count = calls[3].clone();
    let too_slow = handler(move |_event| {
        let count = count.clone();
        async move {
            count.fetch_add(1, SeqCst);
            tokio::time::sleep(timeout * 50).await;
            Ok(())
        }
    });
    let healthy = Recorder::default();

    let bus = system.bus();
    for subscriber in [
        failing,
        panics_before_future,
        panics_inside_future,
        too_slow,
    ] {
        bus.subscribe("payment.*", subscriber).unwrap();
    }
    bus.subscribe("payment.*", healthy.handler()).unwrap();

    for seq in 0..3 {
        publish_fast(&system, "payment.processed", seq);
    }
    flush(&system);

    assert_eq!(
        healthy.events().iter().map(|e| seq(e)).collect::<Vec<_>>(),
        [0, 1, 2]
    );
    for (i, count) in calls.iter().enumerate() {
        assert_eq!(
            count.load(SeqCst),
            3,
            "misbehaving subscriber {i} was not called for every event"
        );
    }
    let stats = system.stats().snapshot();
    assert_eq!(
        stats.subscriber_errors["rust"], 9,
        "3 events x error, panic, panic"
    );
    assert_eq!(stats.subscriber_timeouts["rust"], 3);
    assert_eq!(stats.subscriber_errors["ruby"], 0);
    assert_eq!(stats.rust_subscribers.delivered, 15);
    assert!(system.shutdown().is_complete());
}

#[test]
fn full_channels_drop_and_count_without_blocking_the_publisher() {
    let config = Config {
        broadcast_buffer_size: 2,
        ..Config::default()
    };
    let system = Arc::new(start(config));
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(AtomicU64::new(0));
    system
        .bus()
        .subscribe("payment.*", gated(&gate, &entered))
        .unwrap();
    system.bus().subscribe_ruby(1, &["payment.*"]).unwrap();

    // The first event is taken by the subscriber, which then holds on to it, so its channel is
    // empty and its two slots are free; the drain queue keeps the first event in one of its two.
    publish_fast(&system, "payment.processed", 0);
    wait_until("the gated subscriber holds the first event", || {
        entered.load(SeqCst) == 1
    });

    // Publish from another thread: were the publisher to block on a full channel, this test
    // would fail at the timeout below instead of hanging.
    let (done, finished) = mpsc::channel();
    let publisher = {
        let system = system.clone();
        std::thread::spawn(move || {
            for seq in 1..=10 {
                publish_fast(&system, "payment.processed", seq);
            }
            done.send(()).unwrap();
        })
    };
    finished
        .recv_timeout(PATIENCE)
        .expect("publishing to full channels blocked");
    publisher.join().unwrap();

    let stats = system.stats().snapshot();
    assert_eq!(stats.rust_subscribers.accepted, 11);
    assert_eq!(
        stats.rust_subscribers.dropped["channel_full"], 8,
        "{stats:?}"
    );
    assert_eq!(stats.ruby_subscribers.accepted, 11);
    assert_eq!(
        stats.ruby_subscribers.dropped["channel_full"], 9,
        "{stats:?}"
    );
    assert_eq!(system.drain_queue().len(), 2);

    gate.add_permits(1);
    assert_eq!(drain_all(system.drain_queue(), system.stats()), 2);
    flush(&system);
    assert_eq!(
        entered.load(SeqCst),
        3,
        "the held event and the two that fitted"
    );
    assert_counters_add_up(&system.stats().snapshot());
}

#[test]
fn ruby_subscribers_get_deliveries_with_matching_ids() {
    let system = start(Config::default());
    let bus = system.bus();
    bus.subscribe_ruby(7, &["payment.*"]).unwrap();
    bus.subscribe_ruby(9, &["*.processed", "order.#"]).unwrap();
    assert!(bus
        .subscribe_ruby(11, &["payment.*", "bad..pattern"])
        .is_err());

    let published = [
        ("payment.processed", vec![7, 9]),
        ("order.item.shipped", vec![9]),
        ("refund.issued", vec![]),
        ("payment.refunded", vec![7]),
        ("order.processed", vec![9]),
    ];
    for (seq, (name, _)) in published.iter().enumerate() {
        publish_fast(&system, name, seq as u64);
    }

    let Wait::Batch(batch) = system.drain_queue().wait_batch(100, Some(PATIENCE)) else {
        panic!("expected a batch of deliveries");
    };
    let got: Vec<(String, Vec<u64>)> = batch
        .iter()
        .map(delivery)
        .map(|d| {
            let mut ids = d.subscriber_ids.to_vec();
            ids.sort_unstable();
            (d.event.event_name.clone(), ids)
        })
        .collect();
    let wanted: Vec<(String, Vec<u64>)> = published
        .iter()
        .filter(|(_, ids)| !ids.is_empty())
        .map(|(name, ids)| (name.to_string(), ids.clone()))
        .collect();
    assert_eq!(got, wanted);
    let quiet = system
        .drain_queue()
        .wait_batch(100, Some(Duration::from_millis(20)));
    assert!(matches!(quiet, Wait::TimedOut), "{quiet:?}");
    assert_eq!(system.stats().snapshot().ruby_subscribers.accepted, 4);

    // Registering an id again replaces its patterns; unsubscribing stops its deliveries.
    bus.subscribe_ruby(7, &["refund.*"]).unwrap();
    assert!(bus.unsubscribe_ruby(9));
    assert!(!bus.unsubscribe_ruby(9));
    for (seq, name) in ["payment.processed", "refund.issued", "refund.reversed"]
        .iter()
        .enumerate()
    {
        publish_fast(&system, name, seq as u64);
    }
    let Wait::Batch(first) = system.drain_queue().wait_batch(1, Some(PATIENCE)) else {
        panic!("expected the first refund");
    };
    let Wait::Batch(rest) = system.drain_queue().wait_batch(10, Some(PATIENCE)) else {
        panic!("expected the second refund");
    };
    let names: Vec<_> = first
        .iter()
        .chain(&rest)
        .map(delivery)
        .map(|d| d.event.event_name.as_str())
        .collect();
    assert_eq!(
        (first.len(), names),
        (1, vec!["refund.issued", "refund.reversed"])
    );
    assert!(first
        .iter()
        .chain(&rest)
        .all(|d| *delivery(d).subscriber_ids == [7]));
}

#[test]
fn a_payload_kept_as_a_host_object_reaches_ruby_subscribers_only() {
    let system = start(Config::default());
    let rust = Recorder::default();
    system.bus().subscribe("order.*", rust.handler()).unwrap();
    system.bus().subscribe_ruby(3, &["#"]).unwrap();

    // What the extension asks before converting a payload.
    let fast = EventDeliveryMode::Fast;
    assert!(system.needs_json_payload("order.placed", fast));
    assert!(!system.needs_json_payload("payment.processed", fast));
    assert!(system.needs_json_payload("payment.processed", EventDeliveryMode::Broadcast));

    let object: Arc<dyn std::any::Any + Send + Sync> = Arc::new("the Ruby hash");
    let host_only = |name: &str| NewEvent {
        host_payload: Some(HostPayload::instead_of_json(object.clone())),
        ..NewEvent::new(name, "payments", Value::Null).delivery_mode(fast)
    };
    // Published as if no Rust subscriber had matched when the payload was looked at: the
    // subscriber that matches now must not receive a payload it cannot read.
    system.publish(host_only("order.placed")).unwrap();
    system.publish(host_only("payment.processed")).unwrap();
    let converted = NewEvent {
        host_payload: Some(HostPayload::alongside_json(object.clone())),
        ..event("order.shipped", 1, fast)
    };
    system.publish(converted).unwrap();

    let Wait::Batch(batch) = system.drain_queue().wait_batch(10, Some(PATIENCE)) else {
        panic!("expected the Ruby deliveries");
    };
    let names: Vec<_> = batch
        .iter()
        .map(|item| delivery(item).event.event_name.as_str())
        .collect();
    assert_eq!(
        names,
        ["order.placed", "payment.processed", "order.shipped"]
    );
    let carried = delivery(&batch[0]).event.host_payload.as_ref().unwrap();
    assert_eq!(
        carried.object().downcast_ref::<&str>(),
        Some(&"the Ruby hash")
    );
    assert!(!delivery(&batch[0]).event.has_json_payload());
    assert!(delivery(&batch[2]).event.has_json_payload());

    wait_until("the Rust subscriber has the converted event", || {
        rust.len() == 1
    });
    assert_eq!(rust.names_and_seqs(), [("order.shipped".to_owned(), 1)]);
    assert_eq!(system.stats().snapshot().rust_subscribers.accepted, 1);
}

#[test]
fn flush_waits_for_subscribers_and_gives_up_on_a_stuck_one() {
    let system = start(Config::default());
    let handled = Arc::new(AtomicU64::new(0));
    let counter = handled.clone();
    let slow = handler(move |_event| {
        let counter = counter.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            counter.fetch_add(1, SeqCst);
            Ok(())
        }
    });
    system.bus().subscribe("payment.*", slow).unwrap();
    for seq in 0..10 {
        publish_fast(&system, "payment.processed", seq);
    }
    flush(&system);
    assert_eq!(
        handled.load(SeqCst),
        10,
        "flush returned before the subscriber finished"
    );

    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(AtomicU64::new(0));
    system
        .bus()
        .subscribe("order.*", gated(&gate, &entered))
        .unwrap();
    publish_fast(&system, "order.placed", 0);
    assert!(!system.flush(Duration::from_millis(100), &|| false));
    assert!(
        !system.flush(PATIENCE, &|| true),
        "an interrupted flush must not wait"
    );

    gate.add_permits(1);
    flush(&system);
    assert!(system.shutdown().is_complete());
}

#[test]
fn durable_events_without_a_database_are_dropped_as_no_database() {
    let system = start(Config::default());
    let recorder = Recorder::default();
    system.bus().subscribe("#", recorder.handler()).unwrap();

    let durable = system.publish(event("payment.processed", 0, EventDeliveryMode::Durable));
    assert_eq!(
        durable,
        Ok(None),
        "a durable-only event with nowhere to go is not accepted"
    );
    let broadcast = system.publish(event("payment.processed", 1, EventDeliveryMode::Broadcast));
    let broadcast_id = broadcast
        .unwrap()
        .expect("the fast side accepts a broadcast event");
    let fast_id = system.publish(event("payment.processed", 2, EventDeliveryMode::Fast));
    assert!(fast_id.unwrap().is_some());
    flush(&system);

    let seen = recorder.events();
    assert_eq!(seen.iter().map(|e| seq(e)).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(seen[0].event_id, broadcast_id);
    let stats = system.stats().snapshot();
    assert_eq!(stats.durable.accepted, 2);
    assert_eq!(stats.durable.dropped["no_database"], 2);
    assert_eq!(stats.durable.delivered, 0);
    let published = ["durable", "fast", "broadcast"].map(|mode| stats.published[mode]);
    assert_eq!(published, [1, 1, 1]);
    assert!(system.shutdown().is_complete());
}

#[test]
fn shutdown_lets_subscribers_finish_what_they_hold() {
    let system = start(Config::default());
    let handled = Arc::new(AtomicU64::new(0));
    let counter = handled.clone();
    let slow = handler(move |_event| {
        let counter = counter.clone();
        async move {
            tokio::time::sleep(Duration::from_millis(2)).await;
            counter.fetch_add(1, SeqCst);
            Ok(())
        }
    });
    system.bus().subscribe("payment.*", slow).unwrap();
    for seq in 0..20 {
        publish_fast(&system, "payment.processed", seq);
    }
    let stats = system.stats().clone();

    assert!(
        system.shutdown().is_complete(),
        "the subscriber had plenty of time"
    );
    assert_eq!(handled.load(SeqCst), 20);
    let snapshot = stats.snapshot();
    assert_eq!(snapshot.rust_subscribers.delivered, 20);
    assert_counters_add_up(&snapshot);
}

#[test]
fn shutdown_counts_events_stuck_in_a_subscriber_as_shutting_down() {
    let config = Config {
        shutdown_drain_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    let system = start(config);
    let stats = system.stats().clone();
    let drain = system.drain_queue().clone();
    let recorder = Recorder::default();
    let gate = Arc::new(Semaphore::new(0));
    let entered = Arc::new(AtomicU64::new(0));
    system
        .bus()
        .subscribe("payment.*", recorder.handler())
        .unwrap();
    system
        .bus()
        .subscribe("payment.#", gated(&gate, &entered))
        .unwrap();
    system.bus().subscribe_ruby(1, &["payment.*"]).unwrap();

    for seq in 0..5 {
        publish_fast(&system, "payment.processed", seq);
    }
    assert_eq!(
        system.publish(event("payment.processed", 5, EventDeliveryMode::Durable)),
        Ok(None)
    );
    wait_until("the healthy subscriber has every event", || {
        recorder.len() == 5
    });
    wait_until("the stuck subscriber holds the first event", || {
        entered.load(SeqCst) == 1
    });

    assert!(
        !system.shutdown().is_complete(),
        "a subscriber was stuck, so shutdown cannot have drained"
    );
    assert_eq!(
        drain_all(&drain, &stats),
        5,
        "the drain queue keeps what it held"
    );
    assert!(matches!(drain.wait_batch(1, None), Wait::Closed));

    let snapshot = stats.snapshot();
    assert_counters_add_up(&snapshot);
    let rust = &snapshot.rust_subscribers;
    assert_eq!((rust.accepted, rust.delivered), (10, 5));
    assert_eq!(
        rust.dropped["shutting_down"], 5,
        "held and queued events of the stuck one"
    );
    assert_eq!(snapshot.durable.dropped["no_database"], 1);
    assert_eq!(snapshot.ruby_subscribers.delivered, 5);
}

#[test]
fn a_handler_that_blocks_its_thread_past_shutdown_is_counted_once() {
    let config = Config {
        shutdown_drain_timeout: Duration::from_millis(50),
        ..Config::default()
    };
    let system = start(config);
    let stats = system.stats().clone();
    let finished = Arc::new(AtomicU64::new(0));
    let blocking = {
        let finished = finished.clone();
        handler(move |_event| {
            let finished = finished.clone();
            async move {
                // Blocks the runtime thread, as a careless synchronous handler would.
                std::thread::sleep(Duration::from_millis(300));
                finished.fetch_add(1, SeqCst);
                Ok(())
            }
        })
    };
    system.bus().subscribe("payment.*", blocking).unwrap();
    publish_fast(&system, "payment.processed", 0);
    std::thread::sleep(Duration::from_millis(20));

    assert!(
        !system.shutdown().is_complete(),
        "the handler was still blocking"
    );
    wait_until("the blocked handler has returned", || {
        finished.load(SeqCst) == 1
    });
    std::thread::sleep(Duration::from_millis(20));

    let snapshot = stats.snapshot();
    assert_counters_add_up(&snapshot);
    assert_eq!(snapshot.rust_subscribers.dropped["shutting_down"], 1);
    assert_eq!(snapshot.rust_subscribers.delivered, 0);
}

#[test]
fn metrics_collector_counts_outcomes_from_execution_result() {
    let system = start(Config::default());
    let metrics = EventMetricsCollector::new();
    system.bus().subscribe("*", metrics.handler()).unwrap();

    let results = [
        Some(json!({"success": true})),
        Some(json!({"success": true, "duration_ms": 12})),
        Some(json!({"success": true})),
        Some(json!({"success": false, "error": "declined"})),
        Some(json!({"success": false})),
        Some(json!({"success": "yes"})),
        Some(json!({})),
        None,
    ];
    for (seq, execution_result) in results.into_iter().enumerate() {
        let new = NewEvent {
            execution_result,
            ..event("step.completed", seq as u64, EventDeliveryMode::Fast)
        };
        assert!(system.publish(new).unwrap().is_some());
    }
    flush(&system);

    assert_eq!(metrics.events_received(), 8);
    assert_eq!(metrics.success_events(), 3);
    assert_eq!(metrics.failure_events(), 2);
    assert!(system.shutdown().is_complete());
}

#[test]
fn logging_subscriber_logs_identifiers_and_never_the_payload() {
    let event = NewEvent {
        task_uuid: Some(uuid::Uuid::now_v7()),
        step_name: Some("charge_card".into()),
        payload: json!({"card_number": "4111111111111111"}),
        ..event("payment.processed", 0, EventDeliveryMode::Fast)
    };
    let event = Arc::new(event.build().unwrap());
    let capture = Capture::default();
    let logged = capture.0.clone();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let handler = logging_subscriber("audit");
    let result =
        tracing::subscriber::with_default(capture, || runtime.block_on(handler(event.clone())));
    assert!(result.is_ok());

    let logged = logged.lock().unwrap();
    assert_eq!(logged.len(), 1, "{logged:?}");
    let fields = &logged[0];
    assert_eq!(fields["level"], "INFO");
    assert_eq!(fields["prefix"], "audit");
    assert_eq!(fields["event_id"], event.event_id.to_string());
    assert_eq!(fields["event_name"], "payment.processed");
    assert_eq!(fields["namespace"], "payments");
    assert_eq!(fields["step_name"], "charge_card");
    assert_eq!(
        fields["correlation_id"],
        event.metadata.correlation_id.to_string()
    );
    assert!(
        !fields.values().any(|v| v.contains("4111")),
        "payload leaked: {fields:?}"
    );

    // Through the bus it runs like any subscriber, without errors.
    let system = start(Config::default());
    system
        .bus()
        .subscribe("payment.#", logging_subscriber("audit"))
        .unwrap();
    publish_fast(&system, "payment.processed", 1);
    flush(&system);
    let stats = system.stats().snapshot();
    assert_eq!(
        (
            stats.rust_subscribers.delivered,
            stats.subscriber_errors["rust"]
        ),
        (1, 0)
    );
    assert!(system.shutdown().is_complete());
}

/// A `tracing` subscriber that keeps the fields of every event, rendered as text.
#[derive(Default)]
struct Capture(Arc<Mutex<Vec<BTreeMap<String, String>>>>);

struct Fields(BTreeMap<String, String>);

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().to_owned(), value.to_owned());
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0.insert(field.name().to_owned(), format!("{value:?}"));
    }
}

impl tracing::Subscriber for Capture {
    fn enabled(&self, _metadata: &tracing::Metadata<'_>) -> bool {
        true
    }

    fn new_span(&self, _span: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }

    fn record(&self, _span: &tracing::span::Id, _values: &tracing::span::Record<'_>) {}

    fn record_follows_from(&self, _span: &tracing::span::Id, _follows: &tracing::span::Id) {}

    fn event(&self, event: &tracing::Event<'_>) {
        let mut fields = Fields(BTreeMap::new());
        fields
            .0
            .insert("level".into(), event.metadata().level().to_string());
        event.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }

    fn enter(&self, _span: &tracing::span::Id) {}

    fn exit(&self, _span: &tracing::span::Id) {}
}
