//! Declared events: after a step completes, publish the events its task template declares.
//!
//! [`Dispatcher::dispatch`] runs on the step's thread and only enqueues: it looks the template
//! up (an unknown one is refused at once, so the caller learns of it) and hands the completion
//! to a bounded channel (`command_buffer_size`; full means dropped and counted). One task then
//! takes completions in order and, for each declared event in declaration order, checks its
//! condition against the step's outcome and skips a completion seen before (same step_uuid,
//! attempt and event name, among the last `deduplication_cache_size`).
//!
//! Events without a publisher are built here: the payload is the step result's `result`,
//! checked against the declared schema (compiled once, at template load), and routed. When any
//! matching event names a publisher, the step's matching events go, in order, as one
//! [`PublishJob`] to the drain thread, whose host-language publishers decide on payload and
//! metadata and then call [`publish_declared`]; so the step's events keep their order and no
//! publisher ever runs on the step's thread.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};
use tokio::sync::mpsc::{self, error::TrySendError};
use tracing::warn;
use uuid::Uuid;

use crate::drain::{DrainItem, DrainQueue};
use crate::event::{NewEvent, DEFAULT_FIRED_BY};
use crate::router::EventRouter;
use crate::stats::{DeclaredOutcome, DropReason, SettleGate, Stats};
use crate::template::{EventDeclaration, StepOutcome, TaskTemplate, TemplateRegistry};

/// Which step completed, within which task.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StepContext {
    pub task_uuid: Option<Uuid>,
    pub step_uuid: Option<Uuid>,
    pub step_name: String,
    pub namespace: String,
    pub task_name: String,
    pub task_version: String,
    pub correlation_id: Option<Uuid>,
    pub attempt: Option<u32>,
}

/// A completed step: its context and its result (`success`, `retryable`, `result`,
/// `metadata`, as the worker reported them).
#[derive(Debug, Clone, PartialEq)]
pub struct StepCompletion {
    pub context: StepContext,
    pub step_result: Value,
}

impl StepCompletion {
    pub fn success(&self) -> bool {
        self.step_result.get("success").and_then(Value::as_bool) == Some(true)
    }

    pub fn retryable(&self) -> Option<bool> {
        self.step_result.get("retryable").and_then(Value::as_bool)
    }

    /// The default publisher's payload: the step's `result`.
    pub fn result(&self) -> Value {
        self.step_result
            .get("result")
            .cloned()
            .unwrap_or(Value::Null)
    }
}

/// The events of one completed step that need a host-language publisher, in declaration order.
/// It carries the router so that its events can still be routed while the system shuts down.
pub struct PublishJob {
    pub completion: Arc<StepCompletion>,
    pub declarations: Vec<EventDeclaration>,
    pub router: Arc<EventRouter>,
}

impl std::fmt::Debug for PublishJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.declarations.iter().map(|d| d.name.as_str()).collect();
        f.debug_struct("PublishJob")
            .field("step", &self.completion.context.step_name)
            .field("events", &names)
            .finish()
    }
}

/// Why [`Dispatcher::dispatch`] refused a completion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    UnknownTemplate,
    UnknownStep,
    ChannelFull,
    ShuttingDown,
}

/// The entry point for step completions; cheap to call from any thread.
pub struct Dispatcher {
    sender: mpsc::Sender<(Arc<TaskTemplate>, StepCompletion)>,
    templates: Arc<TemplateRegistry>,
    stats: Arc<Stats>,
    log_dropped_events: bool,
}

impl Dispatcher {
    pub(crate) fn new(
        sender: mpsc::Sender<(Arc<TaskTemplate>, StepCompletion)>,
        templates: Arc<TemplateRegistry>,
        stats: Arc<Stats>,
        log_dropped_events: bool,
    ) -> Self {
        Self {
            sender,
            templates,
            stats,
            log_dropped_events,
        }
    }

    pub fn templates(&self) -> &Arc<TemplateRegistry> {
        &self.templates
    }

    /// Enqueues a completion; never blocks. A refusal is counted and logged.
    pub fn dispatch(&self, completion: StepCompletion) -> Result<(), Refusal> {
        self.stats.dispatch.accept(1);
        let context = &completion.context;
        let template = self.templates.get(
            &context.namespace,
            &context.task_name,
            &context.task_version,
        );
        let Some(template) = template else {
            return Err(self.refuse(&completion, Refusal::UnknownTemplate));
        };
        if template.step(&context.step_name).is_none() {
            return Err(self.refuse(&completion, Refusal::UnknownStep));
        }
        match self.sender.try_send((template, completion)) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full((_, completion))) => {
                Err(self.refuse(&completion, Refusal::ChannelFull))
            }
            Err(TrySendError::Closed((_, completion))) => {
                Err(self.refuse(&completion, Refusal::ShuttingDown))
            }
        }
    }

    fn refuse(&self, completion: &StepCompletion, refusal: Refusal) -> Refusal {
        let reason = match refusal {
            Refusal::UnknownTemplate => DropReason::UnknownTemplate,
            Refusal::UnknownStep => DropReason::UnknownStep,
            Refusal::ChannelFull => DropReason::ChannelFull,
            Refusal::ShuttingDown => DropReason::ShuttingDown,
        };
        self.stats.dispatch.drop_events(reason, 1);
        self.stats.notify_progress();
        if self.log_dropped_events {
            let context = &completion.context;
            warn!(
                namespace = %context.namespace,
                task_name = %context.task_name,
                task_version = %context.task_version,
                step_name = %context.step_name,
                step_uuid = context.step_uuid.map(display),
                correlation_id = context.correlation_id.map(display),
                reason = reason.as_str(),
                "step completion dropped; its declared events are not published"
            );
        }
        refusal
    }
}

/// Remembers the last `capacity` (step_uuid, attempt, event name) keys.
struct DedupeCache {
    capacity: usize,
    seen: HashSet<(Uuid, u32, String)>,
    order: VecDeque<(Uuid, u32, String)>,
}

impl DedupeCache {
    fn new(capacity: usize) -> Self {
        Self {
            capacity,
            seen: HashSet::new(),
            order: VecDeque::new(),
        }
    }

    /// Whether this key is new; records it. Completions without a step_uuid are never
    /// considered duplicates: nothing identifies them.
    fn first_time(&mut self, context: &StepContext, event_name: &str) -> bool {
        let Some(step_uuid) = context.step_uuid else {
            return true;
        };
        if self.capacity == 0 {
            return true;
        }
        let key = (
            step_uuid,
            context.attempt.unwrap_or(0),
            event_name.to_owned(),
        );
        if !self.seen.insert(key.clone()) {
            return false;
        }
        self.order.push_back(key);
        if self.order.len() > self.capacity {
            if let Some(oldest) = self.order.pop_front() {
                self.seen.remove(&oldest);
            }
        }
        true
    }
}

/// The task that turns completions into events or publisher jobs.
pub(crate) struct DispatchProcessor {
    pub router: Arc<EventRouter>,
    pub drain: Arc<DrainQueue>,
    pub stats: Arc<Stats>,
    pub gate: Arc<SettleGate>,
    pub ffi_integration_enabled: bool,
    pub log_dropped_events: bool,
    dedupe: DedupeCache,
}

impl DispatchProcessor {
    pub(crate) fn new(
        router: Arc<EventRouter>,
        drain: Arc<DrainQueue>,
        stats: Arc<Stats>,
        gate: Arc<SettleGate>,
        config: &crate::Config,
    ) -> Self {
        Self {
            router,
            drain,
            stats,
            gate,
            ffi_integration_enabled: config.ffi_integration_enabled,
            log_dropped_events: config.log_dropped_events,
            dedupe: DedupeCache::new(config.deduplication_cache_size),
        }
    }

    pub(crate) async fn run(
        mut self,
        mut receiver: mpsc::Receiver<(Arc<TaskTemplate>, StepCompletion)>,
    ) {
        while let Some((template, completion)) = receiver.recv().await {
            self.process(&template, completion);
            self.gate.count(|| self.stats.dispatch.deliver(1));
            self.stats.notify_progress();
        }
    }

    fn process(&mut self, template: &TaskTemplate, completion: StepCompletion) {
        let context = &completion.context;
        // The dispatcher refused completions of unknown steps.
        let Some(step) = template.step(&context.step_name) else {
            return;
        };
        let outcome = StepOutcome::evaluate(
            completion.success(),
            completion.retryable(),
            context.attempt,
            &step.retry,
        );

        let mut matching = Vec::new();
        for declaration in &step.publishes_events {
            if !declaration.condition.matches(&outcome) {
                self.stats
                    .record_declared(DeclaredOutcome::ConditionNotMet, 1);
            } else if !self.dedupe.first_time(context, &declaration.name) {
                self.stats.record_declared(DeclaredOutcome::Deduplicated, 1);
            } else {
                matching.push(declaration.clone());
            }
        }
        if matching.iter().any(|d| d.publisher.is_some()) {
            self.hand_to_publishers(Arc::new(completion), matching);
        } else {
            for declaration in &matching {
                let payload = completion.result();
                let fired_by = DEFAULT_FIRED_BY;
                let extra = Map::new();
                publish_declared(
                    &self.router,
                    &self.stats,
                    &completion,
                    declaration,
                    payload,
                    extra,
                    fired_by,
                );
            }
        }
    }

    fn hand_to_publishers(
        &self,
        completion: Arc<StepCompletion>,
        declarations: Vec<EventDeclaration>,
    ) {
        let count = declarations.len() as u64;
        if !self.ffi_integration_enabled {
            self.stats
                .record_declared(DeclaredOutcome::FfiDisabled, count);
            if self.log_dropped_events {
                warn!(
                    namespace = %completion.context.namespace,
                    step_name = %completion.context.step_name,
                    events = count,
                    "declared events need a Ruby publisher, but ffi_integration_enabled is false"
                );
            }
            return;
        }
        self.stats.ruby_publishers.accept(1);
        let router = self.router.clone();
        let job = Arc::new(PublishJob {
            completion,
            declarations,
            router,
        });
        if let Err(DrainItem::Publish(job)) = self.drain.try_push(DrainItem::Publish(job)) {
            self.stats
                .ruby_publishers
                .drop_events(DropReason::ChannelFull, 1);
            self.stats.record_declared(DeclaredOutcome::Dropped, count);
            if self.log_dropped_events {
                warn!(
                    namespace = %job.completion.context.namespace,
                    step_name = %job.completion.context.step_name,
                    events = count,
                    reason = DropReason::ChannelFull.as_str(),
                    "publisher job dropped: the drain thread's queue is full"
                );
            }
        }
    }
}

/// Builds a declared event from its final payload and metadata, checks it against the
/// declared schema, and routes it. Returns the event id, or `None` when the event was
/// rejected (counted and logged) or dropped by every path.
pub fn publish_declared(
    router: &EventRouter,
    stats: &Stats,
    completion: &StepCompletion,
    declaration: &EventDeclaration,
    payload: Value,
    extra_metadata: Map<String, Value>,
    fired_by: &str,
) -> Option<Uuid> {
    let context = &completion.context;
    {
        if let Err(violations) = declaration.validate_payload(&payload) {
            stats.record_declared(DeclaredOutcome::SchemaViolation, 1);
            let violations: Vec<String> = violations.iter().map(ToString::to_string).collect();
            warn!(
                event_name = %declaration.name,
                namespace = %context.namespace,
                correlation_id = context.correlation_id.map(display),
                step_name = %context.step_name,
                violations = %violations.join("; "),
                "declared event skipped: payload does not match its schema"
            );
            return None;
        }
    }

    let event = NewEvent {
        event_name: declaration.name.clone(),
        namespace: context.namespace.clone(),
        payload,
        delivery_mode: declaration.delivery_mode,
        task_uuid: context.task_uuid,
        step_uuid: context.step_uuid,
        step_name: Some(context.step_name.clone()),
        correlation_id: context.correlation_id,
        fired_by: Some(fired_by.to_owned()),
        extra_metadata,
        execution_result: Some(completion.step_result.clone()),
        host_payload: None,
    };
    // Names and namespaces were validated when the template loaded.
    let event = match event.build() {
        Ok(event) => event,
        Err(error) => {
            warn!(event_name = %declaration.name, %error, "declared event could not be built");
            return None;
        }
    };
    let id = event.event_id;
    stats.record_declared(DeclaredOutcome::Published, 1);
    router.route(event).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn context(step_uuid: Option<Uuid>, attempt: u32) -> StepContext {
        StepContext {
            task_uuid: None,
            step_uuid,
            step_name: "s".into(),
            namespace: "ns".into(),
            task_name: "t".into(),
            task_version: "1".into(),
            correlation_id: None,
            attempt: Some(attempt),
        }
    }

    #[test]
    fn dedupe_remembers_the_last_n_keys() {
        let mut cache = DedupeCache::new(2);
        let step = Some(Uuid::now_v7());
        assert!(cache.first_time(&context(step, 1), "a.b"));
        assert!(!cache.first_time(&context(step, 1), "a.b"));
        assert!(
            cache.first_time(&context(step, 2), "a.b"),
            "another attempt"
        );
        assert!(cache.first_time(&context(step, 1), "a.c"), "another event");
        // The first key has been pushed out by the two after it.
        assert!(cache.first_time(&context(step, 1), "a.b"));
    }

    #[test]
    fn dedupe_is_off_without_a_step_uuid_or_capacity() {
        let mut cache = DedupeCache::new(10);
        assert!(cache.first_time(&context(None, 1), "a.b"));
        assert!(cache.first_time(&context(None, 1), "a.b"));
        let mut off = DedupeCache::new(0);
        let step = Some(Uuid::now_v7());
        assert!(off.first_time(&context(step, 1), "a.b"));
        assert!(off.first_time(&context(step, 1), "a.b"));
    }
}
