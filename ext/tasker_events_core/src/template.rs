//! Task templates: the YAML files that declare which domain events each step of a task
//! publishes, and on which outcome.
//!
//! A template is validated completely when it is loaded: the namespace, every event name, every
//! `condition` and `delivery_mode`, and every payload `schema` (compiled once, see
//! [`CompiledSchema`]). A template that loads can therefore never fail later because of
//! something it declares. Duplicate step names, and duplicate event names within one step, are
//! load errors too.
//!
//! Templates are shared with the orchestrator's own template files, so keys this crate does not
//! use (`handler`, `dependencies`, `timeout_seconds`, `retry.backoff`, ...) are accepted and
//! ignored. Keys it does use must have the right type; a missing required key (`name`,
//! `namespace_name`, `version`, `steps`, a step's or an event's `name`) is an error.
//! `<<` merge keys are applied before anything is read.
//!
//! A [`TemplateError`] names the file, the step and the event concerned and, where it can, the
//! line: the parser's own line for YAML syntax errors, and for errors found after parsing the
//! line of the offending top-level key, step or event, found by looking for its `name:` line in
//! the text. Templates written in YAML flow style (`[{name: a}]`) get no line for those.
//!
//! When a step finishes, [`StepOutcome::evaluate`] turns its result into an outcome and
//! [`PublicationCondition::matches`] decides which declarations fire:
//!
//! | condition           | fires when                                              |
//! |---------------------|---------------------------------------------------------|
//! | `success` (default) | the step succeeded                                      |
//! | `failure`           | the step failed, for any reason                         |
//! | `retryable_failure` | the step failed and will be retried                     |
//! | `permanent_failure` | the step failed and will not be retried (or is out of retries) |
//! | `always`            | whatever the outcome                                    |

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Arc, PoisonError, RwLock, RwLockWriteGuard};

use serde::{Deserialize, Serialize};
use serde_norway::{Mapping, Value as Yaml};

use crate::event::EventDeliveryMode;
use crate::names::{validate_event_name, validate_namespace};
use crate::schema::{CompiledSchema, SchemaViolation};

/// On which step outcome a declared event is published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PublicationCondition {
    #[default]
    Success,
    Failure,
    RetryableFailure,
    PermanentFailure,
    Always,
}

impl PublicationCondition {
    pub const ALL: [Self; 5] = [
        Self::Success,
        Self::Failure,
        Self::RetryableFailure,
        Self::PermanentFailure,
        Self::Always,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
            Self::RetryableFailure => "retryable_failure",
            Self::PermanentFailure => "permanent_failure",
            Self::Always => "always",
        }
    }

    /// Whether an event with this condition is published for `outcome`.
    pub fn matches(self, outcome: &StepOutcome) -> bool {
        match self {
            Self::Success => outcome.success,
            Self::Failure => !outcome.success,
            Self::RetryableFailure => !outcome.success && outcome.retryable,
            Self::PermanentFailure => !outcome.success && !outcome.retryable,
            Self::Always => true,
        }
    }
}

impl fmt::Display for PublicationCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PublicationCondition {
    type Err = InvalidCondition;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|condition| condition.as_str() == value)
            .ok_or_else(|| InvalidCondition(value.to_owned()))
    }
}

/// A `condition` value that is not one of [`PublicationCondition::ALL`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidCondition(pub String);

impl fmt::Display for InvalidCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let expected: Vec<&str> = PublicationCondition::ALL
            .iter()
            .map(|c| c.as_str())
            .collect();
        write!(
            f,
            "invalid condition {:?} (expected one of {})",
            self.0,
            expected.join(", ")
        )
    }
}

impl std::error::Error for InvalidCondition {}

/// How a step ended, as far as publication conditions care.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StepOutcome {
    pub success: bool,
    /// Whether the step will be tried again; always false for a success.
    pub retryable: bool,
}

impl StepOutcome {
    /// The outcome of an attempt of a step with retry policy `retry`.
    ///
    /// A failure is retryable if the handler said so (`retryable`), or else if the step's policy
    /// says so; either way it is permanent once `attempt` (1 for the first try) has reached the
    /// policy's `limit`, because no retry is left. Without an attempt number or a limit, retries
    /// are not counted.
    pub fn evaluate(
        success: bool,
        retryable: Option<bool>,
        attempt: Option<u32>,
        retry: &RetryPolicy,
    ) -> Self {
        if success {
            return Self {
                success: true,
                retryable: false,
            };
        }
        let exhausted = matches!((attempt, retry.limit), (Some(a), Some(limit)) if a >= limit);
        Self {
            success: false,
            retryable: retryable.unwrap_or(retry.retryable) && !exhausted,
        }
    }
}

/// A step's `retry:` settings, of which only these two matter for publication.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Whether failures are retried unless the handler says otherwise (default true).
    pub retryable: bool,
    /// Attempts allowed in total; none means retries are not counted.
    pub limit: Option<u32>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retryable: true,
            limit: None,
        }
    }
}

/// One entry of `publishes_events` (or of the task's `domain_events`).
#[derive(Debug, Clone)]
pub struct EventDeclaration {
    pub name: String,
    pub description: Option<String>,
    pub condition: PublicationCondition,
    /// The payload schema, compiled once and shared.
    pub schema: Option<Arc<CompiledSchema>>,
    pub delivery_mode: EventDeliveryMode,
    /// Name of a custom publisher; the host language resolves it.
    pub publisher: Option<String>,
}

impl EventDeclaration {
    /// Checks a payload against the declared schema; any payload passes when there is none.
    pub fn validate_payload(
        &self,
        payload: &serde_json::Value,
    ) -> Result<(), Vec<SchemaViolation>> {
        match &self.schema {
            Some(schema) => schema.validate(payload),
            None => Ok(()),
        }
    }
}

/// One entry of `steps`, reduced to what event publication needs.
#[derive(Debug, Clone)]
pub struct StepTemplate {
    pub name: String,
    pub retry: RetryPolicy,
    pub publishes_events: Vec<EventDeclaration>,
}

impl StepTemplate {
    /// The declaration of the event named `name`, if this step publishes it.
    pub fn event(&self, name: &str) -> Option<&EventDeclaration> {
        self.publishes_events
            .iter()
            .find(|event| event.name == name)
    }

    /// The declarations whose condition matches `outcome`, in declaration order.
    pub fn events_for(&self, outcome: StepOutcome) -> impl Iterator<Item = &EventDeclaration> {
        self.publishes_events
            .iter()
            .filter(move |event| event.condition.matches(&outcome))
    }
}

/// A task template: its identity and the events its steps publish.
#[derive(Debug, Clone)]
pub struct TaskTemplate {
    pub name: String,
    /// The template's `namespace_name`.
    pub namespace: String,
    /// As written: `1.0.0`, or `1.0` for a version YAML reads as a number.
    pub version: String,
    pub description: Option<String>,
    /// Task-level declarations (`domain_events`), validated like a step's.
    pub domain_events: Vec<EventDeclaration>,
    pub steps: Vec<StepTemplate>,
    /// The file the template came from, or the label it was parsed under.
    pub source: String,
}

impl TaskTemplate {
    /// Parses and validates a template; `source` names it in errors.
    pub fn parse(yaml: &str, source: &str) -> Result<Self, TemplateError> {
        Parser::new(yaml, source).task()
    }

    /// Reads, parses and validates the template file at `path`.
    pub fn load(path: &Path) -> Result<Self, TemplateError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|err| TemplateError {
            message: format!("cannot read template: {err}"),
            ..TemplateError::new(&file)
        })?;
        Self::parse(&text, &file)
    }

    /// The step named `name`.
    pub fn step(&self, name: &str) -> Option<&StepTemplate> {
        self.steps.iter().find(|step| step.name == name)
    }

    /// Every declaration of the template: task-level ones first, then each step's.
    pub fn declarations(&self) -> impl Iterator<Item = &EventDeclaration> {
        let steps = self.steps.iter().flat_map(|step| &step.publishes_events);
        self.domain_events.iter().chain(steps)
    }
}

/// Why a template was refused, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub file: String,
    pub step: Option<String>,
    pub event: Option<String>,
    /// 1-based line in `file`, where known.
    pub line: Option<usize>,
    pub message: String,
}

impl TemplateError {
    fn new(file: &str) -> Self {
        Self {
            file: file.to_owned(),
            step: None,
            event: None,
            line: None,
            message: String::new(),
        }
    }
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        match (&self.step, &self.event) {
            (Some(step), Some(event)) => write!(f, ": step {step:?}, event {event:?}")?,
            (Some(step), None) => write!(f, ": step {step:?}")?,
            (None, Some(event)) => write!(f, ": task-level event {event:?}")?,
            (None, None) => {}
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for TemplateError {}

/// Which step and event an error concerns, and the line to point at.
#[derive(Debug, Clone, Copy, Default)]
struct Context<'a> {
    step: Option<&'a str>,
    event: Option<&'a str>,
    line: Option<usize>,
}

/// Turns a YAML document into a [`TaskTemplate`], keeping the text to find lines in.
struct Parser<'a> {
    file: &'a str,
    text: &'a str,
    lines: Vec<&'a str>,
}

impl<'a> Parser<'a> {
    fn new(text: &'a str, file: &'a str) -> Self {
        Self {
            file,
            text,
            lines: text.lines().collect(),
        }
    }

    fn task(&self) -> Result<TaskTemplate, TemplateError> {
        let mut root: Yaml =
            serde_norway::from_str(self.text).map_err(|err| self.yaml_error(&err))?;
        root.apply_merge().map_err(|err| self.yaml_error(&err))?;
        let Yaml::Mapping(map) = &root else {
            let message = format!(
                "expected a mapping of template keys, got {}",
                describe(&root)
            );
            return Err(self.error(Context::default(), message));
        };

        let name = self.name(map, "name", self.top("name"))?;
        let namespace_at = self.top("namespace_name");
        let namespace = self.name(map, "namespace_name", namespace_at)?;
        validate_namespace(&namespace).map_err(|err| self.error(namespace_at, err))?;
        let version = self.version(map)?;
        let description = self.optional_string(map, "description", self.top("description"))?;

        let events_at = self.top("domain_events");
        let entries = self.optional_list(map, "domain_events", events_at)?;
        let domain_events = self.events(entries, "domain_events", None, events_at.line)?;
        let steps = self.steps(map)?;

        Ok(TaskTemplate {
            name,
            namespace,
            version,
            description,
            domain_events,
            steps,
            source: self.file.to_owned(),
        })
    }

    fn steps(&self, map: &Mapping) -> Result<Vec<StepTemplate>, TemplateError> {
        let list_at = self.top("steps");
        let Some(value) = present(map, "steps") else {
            return Err(self.error(list_at, "missing required key \"steps\""));
        };
        let entries = self.list(value, "steps", list_at)?;

        let mut steps: Vec<StepTemplate> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let (map, name) = self.named_entry(entry, "steps", "step", index, list_at)?;

            let earlier = steps.iter().filter(|step| step.name == name).count();
            let at = Context {
                step: Some(&name),
                event: None,
                line: self.name_line(list_at.line, &name, earlier),
            };
            if earlier > 0 {
                let first = self.name_line(list_at.line, &name, 0);
                return Err(self.error(at, duplicate("step", first)));
            }
            steps.push(self.step(map, &name, at)?);
        }
        Ok(steps)
    }

    fn step(&self, map: &Mapping, name: &str, at: Context) -> Result<StepTemplate, TemplateError> {
        let retry = self.retry(map, at)?;
        let entries = self.optional_list(map, "publishes_events", at)?;
        let publishes_events = self.events(entries, "publishes_events", Some(name), at.line)?;
        Ok(StepTemplate {
            name: name.to_owned(),
            retry,
            publishes_events,
        })
    }

    fn retry(&self, map: &Mapping, at: Context) -> Result<RetryPolicy, TemplateError> {
        let Some(value) = present(map, "retry") else {
            return Ok(RetryPolicy::default());
        };
        let Yaml::Mapping(retry) = value else {
            return Err(self.wrong_type("retry", "a mapping", value, at));
        };

        let retryable = match present(retry, "retryable") {
            None => true,
            Some(Yaml::Bool(retryable)) => *retryable,
            Some(other) => return Err(self.wrong_type("retry.retryable", "a boolean", other, at)),
        };
        let limit = match present(retry, "limit") {
            None => None,
            Some(value) => {
                let limit = value.as_u64().and_then(|n| u32::try_from(n).ok());
                let expected = "an integer from 0 to 4294967295";
                Some(limit.ok_or_else(|| self.wrong_type("retry.limit", expected, value, at))?)
            }
        };
        Ok(RetryPolicy { retryable, limit })
    }

    /// Parses the event declarations of one list; `search_from` is the line after which their
    /// `name:` lines are looked for (the step's line, or the `domain_events:` line).
    fn events(
        &self,
        entries: &[Yaml],
        key: &str,
        step: Option<&str>,
        search_from: Option<usize>,
    ) -> Result<Vec<EventDeclaration>, TemplateError> {
        let mut events: Vec<EventDeclaration> = Vec::with_capacity(entries.len());
        for (index, entry) in entries.iter().enumerate() {
            let list_at = Context {
                step,
                event: None,
                line: search_from,
            };
            let label = format!("{key} entry");
            let (map, name) = self.named_entry(entry, key, &label, index, list_at)?;

            let earlier = events.iter().filter(|event| event.name == name).count();
            let at = Context {
                step,
                event: Some(&name),
                line: self.name_line(search_from, &name, earlier),
            };
            if earlier > 0 {
                let first = self.name_line(search_from, &name, 0);
                return Err(self.error(at, duplicate("event", first)));
            }
            events.push(self.event(map, &name, at)?);
        }
        Ok(events)
    }

    fn event(
        &self,
        map: &Mapping,
        name: &str,
        at: Context,
    ) -> Result<EventDeclaration, TemplateError> {
        validate_event_name(name).map_err(|err| self.error(at, err))?;

        let condition = match self.optional_string(map, "condition", at)? {
            Some(value) => value.parse().map_err(|err| self.error(at, err))?,
            None => PublicationCondition::default(),
        };
        let delivery_mode = match self.optional_string(map, "delivery_mode", at)? {
            Some(value) => value.parse().map_err(|err| self.error(at, err))?,
            None => EventDeliveryMode::default(),
        };
        let publisher = match present(map, "publisher") {
            Some(_) => Some(self.name(map, "publisher", at)?),
            None => None,
        };

        Ok(EventDeclaration {
            name: name.to_owned(),
            description: self.optional_string(map, "description", at)?,
            condition,
            schema: self.schema(map, at)?,
            delivery_mode,
            publisher,
        })
    }

    fn schema(
        &self,
        map: &Mapping,
        at: Context,
    ) -> Result<Option<Arc<CompiledSchema>>, TemplateError> {
        let Some(value) = present(map, "schema") else {
            return Ok(None);
        };
        if !matches!(value, Yaml::Mapping(_) | Yaml::Bool(_)) {
            return Err(self.wrong_type("schema", "a mapping or a boolean", value, at));
        }
        let json = serde_json::to_value(value).map_err(|err| {
            self.error(at, format!("schema cannot be represented as JSON: {err}"))
        })?;
        let schema = CompiledSchema::compile(&json)
            .map_err(|err| self.error(at, format!("invalid schema: {err}")))?;
        Ok(Some(Arc::new(schema)))
    }

    /// The version as written in the file: YAML reads `1.0` as the float 1 and `1.10` as 1.1.
    fn version(&self, map: &Mapping) -> Result<String, TemplateError> {
        let at = self.top("version");
        match present(map, "version") {
            None => Err(self.error(at, "missing required key \"version\"")),
            Some(Yaml::String(version)) if !version.trim().is_empty() => Ok(version.clone()),
            Some(Yaml::Number(number)) => Ok(self
                .top_level_scalar("version")
                .unwrap_or_else(|| number.to_string())),
            Some(other) => {
                Err(self.wrong_type("version", "a non-empty string or a number", other, at))
            }
        }
    }

    /// A required, non-empty string.
    fn name(&self, map: &Mapping, key: &str, at: Context) -> Result<String, TemplateError> {
        match present(map, key) {
            None => Err(self.error(at, format!("missing required key {key:?}"))),
            Some(Yaml::String(value)) if !value.trim().is_empty() => Ok(value.clone()),
            Some(other) => Err(self.wrong_type(key, "a non-empty string", other, at)),
        }
    }

    fn optional_string(
        &self,
        map: &Mapping,
        key: &str,
        at: Context,
    ) -> Result<Option<String>, TemplateError> {
        match present(map, key) {
            None => Ok(None),
            Some(Yaml::String(value)) => Ok(Some(value.clone())),
            Some(other) => Err(self.wrong_type(key, "a string", other, at)),
        }
    }

    fn optional_list<'m>(
        &self,
        map: &'m Mapping,
        key: &str,
        at: Context,
    ) -> Result<&'m [Yaml], TemplateError> {
        match present(map, key) {
            None => Ok(&[]),
            Some(value) => self.list(value, key, at),
        }
    }

    fn list<'m>(
        &self,
        value: &'m Yaml,
        key: &str,
        at: Context,
    ) -> Result<&'m [Yaml], TemplateError> {
        match value {
            Yaml::Sequence(entries) => Ok(entries),
            other => Err(self.wrong_type(key, "a list", other, at)),
        }
    }

    fn entry<'m>(
        &self,
        value: &'m Yaml,
        key: &str,
        index: usize,
        at: Context,
    ) -> Result<&'m Mapping, TemplateError> {
        match value {
            Yaml::Mapping(map) => Ok(map),
            other => {
                let message = format!(
                    "{key} entry #{} must be a mapping, got {}",
                    index + 1,
                    describe(other)
                );
                Err(self.error(at, message))
            }
        }
    }

    /// An entry of a list of named mappings (steps, event declarations) and its `name`; a
    /// missing name is reported as `<label> #<position>`, since there is no name to show.
    fn named_entry<'m>(
        &self,
        entry: &'m Yaml,
        key: &str,
        label: &str,
        index: usize,
        list_at: Context,
    ) -> Result<(&'m Mapping, String), TemplateError> {
        let map = self.entry(entry, key, index, list_at)?;
        let name_at = Context {
            line: None,
            ..list_at
        };
        let name = self
            .name(map, "name", name_at)
            .map_err(|err| TemplateError {
                message: format!("{label} #{}: {}", index + 1, err.message),
                ..err
            })?;
        Ok((map, name))
    }

    fn wrong_type(&self, key: &str, expected: &str, value: &Yaml, at: Context) -> TemplateError {
        let message = format!("{key:?} must be {expected}, got {}", describe(value));
        self.error(at, message)
    }

    fn error(&self, at: Context, message: impl fmt::Display) -> TemplateError {
        TemplateError {
            step: at.step.map(str::to_owned),
            event: at.event.map(str::to_owned),
            line: at.line,
            message: message.to_string(),
            ..TemplateError::new(self.file)
        }
    }

    fn yaml_error(&self, err: &serde_norway::Error) -> TemplateError {
        TemplateError {
            line: err.location().map(|location| location.line()),
            message: format!("invalid YAML: {err}"),
            ..TemplateError::new(self.file)
        }
    }

    /// Context for an error about a top-level key, pointing at that key's line.
    fn top(&self, key: &str) -> Context<'static> {
        let line = self.lines.iter().position(|line| {
            line.strip_prefix(key)
                .is_some_and(|rest| rest.starts_with(':'))
        });
        Context {
            line: line.map(|index| index + 1),
            ..Context::default()
        }
    }

    /// The unquoted scalar written after a top-level `key:`, if it looks like a number.
    fn top_level_scalar(&self, key: &str) -> Option<String> {
        let line = self.lines[self.top(key).line? - 1];
        let value = strip_comment(&line[key.len() + 1..]).trim();
        value
            .starts_with(|c: char| c.is_ascii_digit())
            .then(|| value.to_owned())
    }

    /// The 1-based line of the `nth` (0-based) `name: <name>` entry after line `after`.
    fn name_line(&self, after: Option<usize>, name: &str, nth: usize) -> Option<usize> {
        let after = after?;
        let found = self
            .lines
            .iter()
            .enumerate()
            .skip(after)
            .filter(|(_, line)| {
                let line = line.trim_start();
                let line = line.strip_prefix('-').map_or(line, str::trim_start);
                let Some(value) = line.strip_prefix("name:") else {
                    return false;
                };
                unquote(strip_comment(value).trim()) == name
            });
        found.map(|(index, _)| index + 1).nth(nth)
    }
}

/// A key's value, treating an explicit `null` (or an empty value) like a missing key.
fn present<'m>(map: &'m Mapping, key: &str) -> Option<&'m Yaml> {
    map.get(key).filter(|value| !value.is_null())
}

fn duplicate(what: &str, first_line: Option<usize>) -> String {
    match first_line {
        Some(line) => format!("duplicate {what} name (first declared at line {line})"),
        None => format!("duplicate {what} name"),
    }
}

/// What a YAML value is, with the value itself for scalars, for "got ..." in messages.
fn describe(value: &Yaml) -> String {
    match value {
        Yaml::Null => "null".to_owned(),
        Yaml::Bool(value) => format!("a boolean ({value})"),
        Yaml::Number(value) => format!("a number ({value})"),
        Yaml::String(value) => format!("a string ({value:?})"),
        Yaml::Sequence(_) => "a list".to_owned(),
        Yaml::Mapping(_) => "a mapping".to_owned(),
        Yaml::Tagged(tagged) => format!("a value tagged {}", tagged.tag),
    }
}

fn strip_comment(value: &str) -> &str {
    value.find(" #").map_or(value, |at| &value[..at])
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value
            .strip_prefix(quote)
            .and_then(|v| v.strip_suffix(quote))
        {
            return inner;
        }
    }
    value
}

type TemplateKey = (String, String, String);

/// Loaded templates by (namespace, name, version), shared across threads.
///
/// Loading the same template file again replaces it; the same (namespace, name, version) from
/// a second file is refused, since which of the two would apply is not knowable.
#[derive(Debug, Default)]
pub struct TemplateRegistry {
    templates: RwLock<BTreeMap<TemplateKey, Arc<TaskTemplate>>>,
}

impl TemplateRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a template, or replaces one loaded earlier from the same source.
    pub fn insert(&self, template: Arc<TaskTemplate>) -> Result<(), TemplateError> {
        let mut templates = self.write();
        stage(&mut templates, template)
    }

    /// Loads every `.yaml` and `.yml` file under `dir`, recursively, in path order.
    ///
    /// All or nothing: if any file is unreadable, invalid or a duplicate, no template is added.
    /// Returns how many templates were loaded.
    pub fn load_dir(&self, dir: &Path) -> Result<usize, TemplateError> {
        let mut files = Vec::new();
        collect_yaml_files(dir, &mut files)?;
        files.sort();
        let parsed = files
            .iter()
            .map(|file| TaskTemplate::load(file).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;

        let mut templates = self.write();
        let mut staged = templates.clone();
        for template in parsed {
            stage(&mut staged, template)?;
        }
        *templates = staged;
        Ok(files.len())
    }

    pub fn get(&self, namespace: &str, name: &str, version: &str) -> Option<Arc<TaskTemplate>> {
        let key = (namespace.to_owned(), name.to_owned(), version.to_owned());
        self.read().get(&key).cloned()
    }

    /// A snapshot of the templates, ordered by namespace, name and version.
    pub fn iter(&self) -> impl Iterator<Item = Arc<TaskTemplate>> {
        let snapshot: Vec<_> = self.read().values().cloned().collect();
        snapshot.into_iter()
    }

    pub fn len(&self) -> usize {
        self.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.read().is_empty()
    }

    /// Every distinct `publisher:` named by any declaration, sorted, so the host can check that
    /// each one is registered before the first event needs it.
    pub fn publisher_names(&self) -> Vec<String> {
        let templates = self.read();
        let names: BTreeSet<&str> = templates
            .values()
            .flat_map(|template| template.declarations())
            .filter_map(|event| event.publisher.as_deref())
            .collect();
        names.into_iter().map(str::to_owned).collect()
    }

    // A panic while the lock is held cannot leave the map half-updated (every update is a
    // single insert or a swap), so a poisoned lock is safe to keep using.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, BTreeMap<TemplateKey, Arc<TaskTemplate>>> {
        self.templates
            .read()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, BTreeMap<TemplateKey, Arc<TaskTemplate>>> {
        self.templates
            .write()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

fn stage(
    templates: &mut BTreeMap<TemplateKey, Arc<TaskTemplate>>,
    template: Arc<TaskTemplate>,
) -> Result<(), TemplateError> {
    let key = (
        template.namespace.clone(),
        template.name.clone(),
        template.version.clone(),
    );
    if let Some(existing) = templates.get(&key) {
        if existing.source != template.source {
            let (namespace, name, version) = &key;
            return Err(TemplateError {
                message: format!(
                    "template {namespace}/{name} version {version} is already loaded from {}",
                    existing.source
                ),
                ..TemplateError::new(&template.source)
            });
        }
    }
    templates.insert(key, template);
    Ok(())
}

fn collect_yaml_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), TemplateError> {
    let unreadable = |err: std::io::Error| TemplateError {
        message: format!("cannot read template directory: {err}"),
        ..TemplateError::new(&dir.display().to_string())
    };
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let entry = entry.map_err(unreadable)?;
        let path = entry.path();
        // `file_type` does not follow symlinks, so a symlinked directory cannot loop forever.
        if entry.file_type().map_err(unreadable)?.is_dir() {
            collect_yaml_files(&path, files)?;
        } else if path.is_file()
            && path
                .extension()
                .is_some_and(|ext| ext == "yaml" || ext == "yml")
        {
            files.push(path);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "\
name: refund
namespace_name: payments
version: 2.1.0
steps:
  - name: issue_refund
    publishes_events:
      - name: refund.issued
";

    fn outcome(success: bool, retryable: bool) -> StepOutcome {
        StepOutcome { success, retryable }
    }

    #[test]
    fn condition_names_round_trip() {
        for condition in PublicationCondition::ALL {
            assert_eq!(condition.as_str().parse(), Ok(condition));
            assert_eq!(condition.to_string(), condition.as_str());
            let json = serde_json::to_value(condition).unwrap();
            assert_eq!(json, serde_json::Value::from(condition.as_str()));
            assert_eq!(
                serde_json::from_value::<PublicationCondition>(json).unwrap(),
                condition
            );
        }
        assert_eq!(
            PublicationCondition::default(),
            PublicationCondition::Success
        );
    }

    #[test]
    fn unknown_condition_lists_the_choices() {
        let err = "sucess".parse::<PublicationCondition>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "invalid condition \"sucess\" (expected one of success, failure, \
             retryable_failure, permanent_failure, always)"
        );
        assert!("Success".parse::<PublicationCondition>().is_err());
    }

    #[test]
    fn every_condition_against_every_outcome() {
        use PublicationCondition::*;
        let succeeded = outcome(true, false);
        let will_retry = outcome(false, true);
        let gave_up = outcome(false, false);
        let table = [
            (Success, [true, false, false]),
            (Failure, [false, true, true]),
            (RetryableFailure, [false, true, false]),
            (PermanentFailure, [false, false, true]),
            (Always, [true, true, true]),
        ];
        for (condition, expected) in table {
            let actual = [succeeded, will_retry, gave_up].map(|o| condition.matches(&o));
            assert_eq!(actual, expected, "{condition}");
        }
    }

    #[test]
    fn success_is_never_retryable() {
        let policy = RetryPolicy::default();
        let outcome = StepOutcome::evaluate(true, Some(true), Some(1), &policy);
        assert_eq!(
            outcome,
            StepOutcome {
                success: true,
                retryable: false
            }
        );
    }

    #[test]
    fn failure_retryability_comes_from_the_handler_then_the_policy() {
        let retried = RetryPolicy::default();
        let not_retried = RetryPolicy {
            retryable: false,
            limit: None,
        };
        assert!(StepOutcome::evaluate(false, None, None, &retried).retryable);
        assert!(!StepOutcome::evaluate(false, None, None, &not_retried).retryable);
        assert!(!StepOutcome::evaluate(false, Some(false), None, &retried).retryable);
        assert!(StepOutcome::evaluate(false, Some(true), None, &not_retried).retryable);
    }

    #[test]
    fn failure_on_the_last_allowed_attempt_is_permanent() {
        let policy = RetryPolicy {
            retryable: true,
            limit: Some(3),
        };
        let attempt = |n| StepOutcome::evaluate(false, Some(true), Some(n), &policy);
        assert!(attempt(1).retryable);
        assert!(attempt(2).retryable);
        assert!(!attempt(3).retryable);
        assert!(!attempt(4).retryable);
        assert!(PublicationCondition::PermanentFailure.matches(&attempt(3)));
        assert!(PublicationCondition::RetryableFailure.matches(&attempt(2)));

        // Without an attempt number or a limit there is nothing to count.
        assert!(StepOutcome::evaluate(false, None, None, &policy).retryable);
        let unlimited = RetryPolicy::default();
        assert!(StepOutcome::evaluate(false, None, Some(99), &unlimited).retryable);
    }

    #[test]
    fn defaults_apply_to_a_bare_declaration() {
        let template = TaskTemplate::parse(MINIMAL, "minimal.yaml").unwrap();
        assert_eq!(template.version, "2.1.0");
        assert!(template.domain_events.is_empty());
        let step = template.step("issue_refund").unwrap();
        assert_eq!(step.retry, RetryPolicy::default());
        let event = step.event("refund.issued").unwrap();
        assert_eq!(event.condition, PublicationCondition::Success);
        assert_eq!(event.delivery_mode, EventDeliveryMode::Durable);
        assert!(event.schema.is_none() && event.publisher.is_none());
        assert_eq!(
            event.validate_payload(&serde_json::json!("anything")),
            Ok(())
        );
        assert!(template.step("missing").is_none());
    }

    #[test]
    fn numeric_versions_keep_their_written_form() {
        let cases = [
            ("1.0", "1.0"),
            ("1.10", "1.10"),
            ("3", "3"),
            ("1.0 # first release", "1.0"),
            ("\"1.0\"", "1.0"),
            ("'1.0.0'", "1.0.0"),
        ];
        for (written, expected) in cases {
            let yaml = MINIMAL.replace("version: 2.1.0", &format!("version: {written}"));
            let template = TaskTemplate::parse(&yaml, "v.yaml").unwrap();
            assert_eq!(template.version, expected, "{written}");
        }
    }

    #[test]
    fn events_for_filters_by_outcome_in_order() {
        let yaml = "\
name: t
namespace_name: ns
version: 1.0.0
steps:
  - name: s
    publishes_events:
      - { name: a.done, condition: success }
      - { name: a.failed, condition: failure }
      - { name: a.gave_up, condition: permanent_failure }
      - { name: a.finished, condition: always }
";
        let template = TaskTemplate::parse(yaml, "t.yaml").unwrap();
        let step = template.step("s").unwrap();
        let names =
            |outcome| -> Vec<&str> { step.events_for(outcome).map(|e| e.name.as_str()).collect() };
        assert_eq!(names(outcome(true, false)), ["a.done", "a.finished"]);
        assert_eq!(names(outcome(false, true)), ["a.failed", "a.finished"]);
        assert_eq!(
            names(outcome(false, false)),
            ["a.failed", "a.gave_up", "a.finished"]
        );
    }

    #[test]
    fn merge_keys_are_applied() {
        let yaml = "\
name: t
namespace_name: ns
version: 1.0.0
steps:
  - name: s
    publishes_events:
      - &base { name: a.done, delivery_mode: fast, publisher: Shared }
      - <<: *base
        name: a.also_done
";
        let template = TaskTemplate::parse(yaml, "t.yaml").unwrap();
        let merged = template.step("s").unwrap().event("a.also_done").unwrap();
        assert_eq!(merged.delivery_mode, EventDeliveryMode::Fast);
        assert_eq!(merged.publisher.as_deref(), Some("Shared"));
    }

    #[test]
    fn error_display_shows_only_what_is_known() {
        let mut err = TemplateError {
            message: "boom".into(),
            ..TemplateError::new("t.yaml")
        };
        assert_eq!(err.to_string(), "t.yaml: boom");
        err.line = Some(4);
        err.event = Some("a.b".into());
        assert_eq!(err.to_string(), "t.yaml:4: task-level event \"a.b\": boom");
        err.step = Some("s".into());
        assert_eq!(err.to_string(), "t.yaml:4: step \"s\", event \"a.b\": boom");
        err.event = None;
        assert_eq!(err.to_string(), "t.yaml:4: step \"s\": boom");
    }

    #[test]
    fn describe_names_scalars_with_their_value() {
        let yaml = |text: &str| serde_norway::from_str::<Yaml>(text).unwrap();
        assert_eq!(describe(&yaml("\"x\"")), "a string (\"x\")");
        assert_eq!(describe(&yaml("1.5")), "a number (1.5)");
        assert_eq!(describe(&yaml("true")), "a boolean (true)");
        assert_eq!(describe(&yaml("~")), "null");
        assert_eq!(describe(&yaml("[1]")), "a list");
        assert_eq!(describe(&yaml("{a: 1}")), "a mapping");
        assert_eq!(describe(&yaml("!money 5")), "a value tagged !money");
    }

    fn registry_template(source: &str, publisher: &str) -> Arc<TaskTemplate> {
        let yaml = MINIMAL.replace(
            "      - name: refund.issued\n",
            &format!("      - name: refund.issued\n        publisher: {publisher}\n"),
        );
        Arc::new(TaskTemplate::parse(&yaml, source).unwrap())
    }

    #[test]
    fn registry_refuses_the_same_template_from_another_file() {
        let registry = TemplateRegistry::new();
        registry.insert(registry_template("a.yaml", "P")).unwrap();
        registry.insert(registry_template("a.yaml", "Q")).unwrap();
        assert_eq!(registry.len(), 1);
        let reloaded = registry.get("payments", "refund", "2.1.0").unwrap();
        assert_eq!(
            reloaded.steps[0].publishes_events[0].publisher.as_deref(),
            Some("Q")
        );

        let err = registry
            .insert(registry_template("b.yaml", "P"))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "b.yaml: template payments/refund version 2.1.0 is already loaded from a.yaml"
        );
        assert_eq!(registry.len(), 1);
        assert!(registry.get("payments", "refund", "9").is_none());
    }

    #[test]
    fn registry_lists_templates_and_distinct_publishers() {
        let registry = TemplateRegistry::new();
        assert!(registry.is_empty());
        assert!(registry.publisher_names().is_empty());
        registry.insert(registry_template("a.yaml", "Zed")).unwrap();
        let other = MINIMAL.replace("name: refund\n", "name: chargeback\n");
        let other = other.replace(
            "      - name: refund.issued\n",
            "      - name: refund.issued\n        publisher: Alpha\n",
        );
        let other = TaskTemplate::parse(&other, "c.yaml").unwrap();
        registry.insert(Arc::new(other)).unwrap();

        let names: Vec<String> = registry.iter().map(|t| t.name.clone()).collect();
        assert_eq!(names, ["chargeback", "refund"]);
        assert_eq!(registry.publisher_names(), ["Alpha", "Zed"]);

        fn assert_shareable<T: Send + Sync>() {}
        assert_shareable::<TemplateRegistry>();
        assert_shareable::<TaskTemplate>();
    }
}
