//! `infra/topology.toml`: the one description of the bus (SPEC §4).
//!
//! The file names the SNS topic and, for each SQS queue, which event types
//! it receives, its dead-letter queue settings and, optionally, the admin
//! address of the worker that drains it. `hookfleet infra apply` makes AWS
//! match it; the workers and the CLI read it to find their queues.
//!
//! ```toml
//! [topic]
//! name = "hookfleet-events"
//!
//! [defaults]                      # every key optional
//! max_receive_count = 5
//! visibility_timeout_secs = 60
//! message_retention_secs = 345600
//! dlq_retention_secs = 1209600
//!
//! [[queues]]
//! name = "hookfleet-analytics"
//! except_event_types = ["test"]   # or event_types = [...], exactly one
//! admin = "127.0.0.1:9101"        # optional
//! # any key of [defaults] may be overridden here
//! ```
//!
//! Loading validates everything that AWS would refuse later (names,
//! ranges) and everything that would silently route wrong (a queue with no
//! filter, two filters, or a duplicate name), so a bad file stops a binary
//! at start with one line instead of half-applying.

use std::collections::HashSet;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use serde_json::json;

use crate::attributes;

/// Where binaries look for the topology unless `HOOKFLEET_TOPOLOGY` says
/// otherwise (relative to the working directory).
pub const DEFAULT_TOPOLOGY_PATH: &str = "infra/topology.toml";

/// The suffix that turns a queue name into its dead-letter queue's name.
pub const DLQ_SUFFIX: &str = "-dlq";

/// Defaults for the `[defaults]` keys the file leaves out.
const DEFAULT_MAX_RECEIVE_COUNT: u32 = 5;
const DEFAULT_VISIBILITY_TIMEOUT_SECS: u32 = 60;
const DEFAULT_MESSAGE_RETENTION_SECS: u32 = 4 * 24 * 3600;
const DEFAULT_DLQ_RETENTION_SECS: u32 = 14 * 24 * 3600;

/// SQS limits (AWS documentation, "Amazon SQS quotas").
const MAX_RECEIVE_COUNT_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;
const VISIBILITY_TIMEOUT_RANGE: std::ops::RangeInclusive<u32> = 0..=43_200;
const RETENTION_RANGE: std::ops::RangeInclusive<u32> = 60..=1_209_600;
const MAX_QUEUE_NAME_LEN: usize = 80;
const MAX_TOPIC_NAME_LEN: usize = 256;

/// The whole bus: one topic and the queues subscribed to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The SNS topic ingest publishes to.
    pub topic: TopicSpec,
    /// The subscribed queues, in file order.
    pub queues: Vec<QueueSpec>,
}

/// The SNS topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// The topic name (not its ARN).
    pub name: String,
}

/// One SQS queue, its subscription and its dead-letter queue, with the
/// `[defaults]` already applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueSpec {
    /// The queue name (not its URL).
    pub name: String,
    /// Which event types the subscription delivers.
    pub filter: EventFilter,
    /// Receives before SQS moves a message to the DLQ (`maxReceiveCount`).
    pub max_receive_count: u32,
    /// The queue's default visibility timeout.
    pub visibility_timeout_secs: u32,
    /// How long the queue keeps a message.
    pub message_retention_secs: u32,
    /// How long the DLQ keeps a message.
    pub dlq_retention_secs: u32,
    /// The admin address (`host:port`) of the worker draining this queue,
    /// for `hookfleet status`.
    pub admin: Option<String>,
}

impl QueueSpec {
    /// The dead-letter queue's name: `<name>-dlq`.
    pub fn dlq_name(&self) -> String {
        format!("{}{DLQ_SUFFIX}", self.name)
    }
}

/// Which event types a queue receives: the SNS filter policy on the
/// `event_type` message attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventFilter {
    /// Exactly these types.
    Only(Vec<String>),
    /// Every type but these, including types nobody has heard of yet.
    AllExcept(Vec<String>),
}

impl EventFilter {
    /// Whether a message with this `event_type` is delivered: what SNS
    /// decides with [`Self::filter_policy`].
    pub fn matches(&self, event_type: &str) -> bool {
        match self {
            Self::Only(types) => types.iter().any(|t| t == event_type),
            Self::AllExcept(types) => !types.iter().any(|t| t == event_type),
        }
    }

    /// The subscription's `FilterPolicy` (scope `MessageAttributes`):
    /// `{"event_type": ["a", "b"]}` or
    /// `{"event_type": [{"anything-but": ["test"]}]}`.
    pub fn filter_policy(&self) -> serde_json::Value {
        let values = match self {
            Self::Only(types) => json!(types),
            Self::AllExcept(types) => json!([{ "anything-but": types }]),
        };
        json!({ attributes::EVENT_TYPE: values })
    }
}

impl fmt::Display for EventFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Only(types) => write!(f, "{}", types.join(", ")),
            Self::AllExcept(types) => write!(f, "all except {}", types.join(", ")),
        }
    }
}

/// Why a topology file was refused. Each variant displays as one line that
/// starts with the file's path.
#[derive(Debug, thiserror::Error)]
pub enum TopologyError {
    /// The file could not be read.
    #[error("{path}: cannot read: {reason}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        reason: std::io::Error,
    },
    /// Not TOML, or not this format (wrong type, unknown or missing key).
    #[error("{path}: {reason}")]
    Syntax {
        /// The file.
        path: String,
        /// Where and what, e.g. `line 7, column 1: unknown field ...`.
        reason: String,
    },
    /// Well-formed but not usable (bad name, value out of range, ...).
    #[error("{path}: {reason}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, naming the queue when there is one.
        reason: String,
    },
}

impl Topology {
    /// Reads and validates a topology file.
    pub fn load(path: &Path) -> Result<Self, TopologyError> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|reason| TopologyError::Read {
            path: origin.clone(),
            reason,
        })?;
        Self::parse(&text, &origin)
    }

    /// Parses and validates topology text; errors name it `topology`.
    pub fn from_toml(text: &str) -> Result<Self, TopologyError> {
        Self::parse(text, "topology")
    }

    /// The queue with this name.
    pub fn queue(&self, name: &str) -> Option<&QueueSpec> {
        self.queues.iter().find(|queue| queue.name == name)
    }

    /// The queue whose dead-letter queue has this name.
    pub fn queue_for_dlq(&self, dlq_name: &str) -> Option<&QueueSpec> {
        let name = dlq_name.strip_suffix(DLQ_SUFFIX)?;
        self.queue(name)
    }

    /// The queues that receive this event type.
    pub fn queues_for<'a>(&'a self, event_type: &str) -> impl Iterator<Item = &'a QueueSpec> {
        self.queues
            .iter()
            .filter(move |queue| queue.filter.matches(event_type))
    }

    fn parse(text: &str, origin: &str) -> Result<Self, TopologyError> {
        let file: TopologyFile = toml::from_str(text).map_err(|error| TopologyError::Syntax {
            path: origin.to_owned(),
            reason: one_line_toml_error(&error, text),
        })?;

        file.validate().map_err(|reason| TopologyError::Invalid {
            path: origin.to_owned(),
            reason,
        })
    }
}

/// The file as written, before defaults and validation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopologyFile {
    topic: TopicFile,
    #[serde(default)]
    defaults: Settings,
    #[serde(default)]
    queues: Vec<QueueFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TopicFile {
    name: String,
}

/// The keys of `[defaults]`; each queue may override any of them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    max_receive_count: Option<u32>,
    visibility_timeout_secs: Option<u32>,
    message_retention_secs: Option<u32>,
    dlq_retention_secs: Option<u32>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueFile {
    name: String,
    event_types: Option<Vec<String>>,
    except_event_types: Option<Vec<String>>,
    admin: Option<String>,
    max_receive_count: Option<u32>,
    visibility_timeout_secs: Option<u32>,
    message_retention_secs: Option<u32>,
    dlq_retention_secs: Option<u32>,
}

impl TopologyFile {
    fn validate(self) -> Result<Topology, String> {
        check_name("topic", &self.topic.name, MAX_TOPIC_NAME_LEN)?;
        if self.queues.is_empty() {
            return Err("no [[queues]] declared".to_owned());
        }

        let mut names = HashSet::new();
        let mut queues = Vec::with_capacity(self.queues.len());
        for queue in &self.queues {
            let spec = queue
                .spec(&self.defaults)
                .map_err(|reason| format!("queue {:?}: {reason}", queue.name))?;
            for name in [spec.name.clone(), spec.dlq_name()] {
                if !names.insert(name.clone()) {
                    return Err(format!(
                        "queue name {name:?} is used twice (queues and their -dlq must all differ)"
                    ));
                }
            }
            queues.push(spec);
        }

        Ok(Topology {
            topic: TopicSpec {
                name: self.topic.name,
            },
            queues,
        })
    }
}

impl QueueFile {
    fn spec(&self, defaults: &Settings) -> Result<QueueSpec, String> {
        check_name("name", &self.name, MAX_QUEUE_NAME_LEN - DLQ_SUFFIX.len())?;
        let filter = match (&self.event_types, &self.except_event_types) {
            (Some(types), None) => EventFilter::Only(check_event_types("event_types", types)?),
            (None, Some(types)) => {
                EventFilter::AllExcept(check_event_types("except_event_types", types)?)
            }
            _ => return Err("set exactly one of event_types, except_event_types".to_owned()),
        };
        if let Some(admin) = &self.admin {
            check_admin(admin)?;
        }

        let pick = |own: Option<u32>, default: Option<u32>, built_in: u32| {
            own.or(default).unwrap_or(built_in)
        };
        let spec = QueueSpec {
            name: self.name.clone(),
            filter,
            max_receive_count: pick(
                self.max_receive_count,
                defaults.max_receive_count,
                DEFAULT_MAX_RECEIVE_COUNT,
            ),
            visibility_timeout_secs: pick(
                self.visibility_timeout_secs,
                defaults.visibility_timeout_secs,
                DEFAULT_VISIBILITY_TIMEOUT_SECS,
            ),
            message_retention_secs: pick(
                self.message_retention_secs,
                defaults.message_retention_secs,
                DEFAULT_MESSAGE_RETENTION_SECS,
            ),
            dlq_retention_secs: pick(
                self.dlq_retention_secs,
                defaults.dlq_retention_secs,
                DEFAULT_DLQ_RETENTION_SECS,
            ),
            admin: self.admin.clone(),
        };

        check_range(
            "max_receive_count",
            spec.max_receive_count,
            MAX_RECEIVE_COUNT_RANGE,
        )?;
        check_range(
            "visibility_timeout_secs",
            spec.visibility_timeout_secs,
            VISIBILITY_TIMEOUT_RANGE,
        )?;
        check_range(
            "message_retention_secs",
            spec.message_retention_secs,
            RETENTION_RANGE,
        )?;
        check_range(
            "dlq_retention_secs",
            spec.dlq_retention_secs,
            RETENTION_RANGE,
        )?;
        // A message keeps its original enqueue time when it moves to the
        // DLQ, so a shorter DLQ retention would expire it there early.
        if spec.dlq_retention_secs < spec.message_retention_secs {
            return Err(format!(
                "dlq_retention_secs ({}) is shorter than message_retention_secs ({})",
                spec.dlq_retention_secs, spec.message_retention_secs
            ));
        }
        Ok(spec)
    }
}

/// SNS topic and SQS queue names: 1 to `max_len` of `[A-Za-z0-9_-]`.
fn check_name(what: &str, name: &str, max_len: usize) -> Result<(), String> {
    let valid_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if name.is_empty() || name.len() > max_len || !valid_chars {
        return Err(format!(
            "{what} {name:?} is not a valid name (1-{max_len} characters: letters, digits, - and _)"
        ));
    }
    Ok(())
}

fn check_event_types(key: &str, types: &[String]) -> Result<Vec<String>, String> {
    if types.is_empty() {
        return Err(format!("{key} is empty"));
    }
    if let Some(bad) = types.iter().find(|t| t.trim().is_empty() || t.trim() != *t) {
        return Err(format!("{key} holds a blank or padded event type {bad:?}"));
    }
    let mut seen = HashSet::new();
    if let Some(twice) = types.iter().find(|t| !seen.insert(t.as_str())) {
        return Err(format!("{key} lists {twice:?} twice"));
    }
    Ok(types.to_vec())
}

/// `host:port`, the form `HOOKFLEET_ADMIN_LISTEN` takes.
fn check_admin(admin: &str) -> Result<(), String> {
    let valid = admin
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !valid {
        return Err(format!("admin {admin:?} is not host:port"));
    }
    Ok(())
}

fn check_range(key: &str, value: u32, range: std::ops::RangeInclusive<u32>) -> Result<(), String> {
    if !range.contains(&value) {
        return Err(format!(
            "{key} = {value} is outside {}..={}",
            range.start(),
            range.end()
        ));
    }
    Ok(())
}

/// `toml`'s own message spans several lines with a source snippet; this
/// keeps its first line and adds the position.
fn one_line_toml_error(error: &toml::de::Error, text: &str) -> String {
    let message = error
        .message()
        .lines()
        .next()
        .unwrap_or("invalid TOML")
        .trim();
    match error.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHIPPED: &str = include_str!("../../../infra/topology.toml");

    fn minimal(queue_body: &str) -> String {
        format!("[topic]\nname = \"t\"\n\n[[queues]]\nname = \"q\"\n{queue_body}\n")
    }

    fn invalid(text: &str) -> String {
        let error = Topology::from_toml(text).expect_err("should be refused");
        let line = error.to_string();
        assert!(!line.contains('\n'), "not one line: {line}");
        assert!(line.starts_with("topology: "), "{line}");
        line
    }

    #[test]
    fn shipped_topology_routes_as_the_spec_says() {
        let topology = Topology::from_toml(SHIPPED).unwrap();
        assert_eq!(topology.topic.name, "hookfleet-events");

        let routes = |event_type: &str| {
            topology
                .queues_for(event_type)
                .map(|q| q.name.as_str())
                .collect::<Vec<_>>()
        };
        let everything = ["hookfleet-analytics", "hookfleet-alerts"];
        assert_eq!(routes("link.clicked"), everything);
        assert_eq!(routes("deferred_link.claimed"), everything);
        assert_eq!(routes("referral.created"), everything);
        assert_eq!(
            routes("install.tracked"),
            [
                "hookfleet-analytics",
                "hookfleet-alerts",
                "hookfleet-welcome"
            ]
        );
        assert_eq!(
            routes("referral.completed"),
            ["hookfleet-analytics", "hookfleet-alerts", "hookfleet-crm"]
        );
        assert_eq!(routes("ecommerce.purchase"), ["hookfleet-analytics"]);
        assert_eq!(routes("some.future_type"), ["hookfleet-analytics"]);
        assert!(routes("test").is_empty());
    }

    #[test]
    fn shipped_topology_applies_defaults_and_admin_addresses() {
        let topology = Topology::from_toml(SHIPPED).unwrap();
        let crm = topology.queue("hookfleet-crm").unwrap();
        assert_eq!(crm.dlq_name(), "hookfleet-crm-dlq");
        assert_eq!(crm.max_receive_count, 5);
        assert_eq!(crm.visibility_timeout_secs, 60);
        assert_eq!(crm.message_retention_secs, 4 * 24 * 3600);
        assert_eq!(crm.dlq_retention_secs, 14 * 24 * 3600);
        assert_eq!(crm.admin.as_deref(), Some("127.0.0.1:9103"));
        assert_eq!(
            topology.queue("hookfleet-welcome").unwrap().admin,
            crm.admin
        );
        assert_eq!(
            topology
                .queue_for_dlq("hookfleet-welcome-dlq")
                .unwrap()
                .name,
            "hookfleet-welcome"
        );
        assert!(topology.queue_for_dlq("hookfleet-welcome").is_none());
        assert!(topology.queue("nope").is_none());
    }

    #[test]
    fn filter_policies_have_the_sns_shape() {
        let only = EventFilter::Only(vec!["a".into(), "b".into()]);
        assert_eq!(only.filter_policy(), json!({"event_type": ["a", "b"]}));
        let except = EventFilter::AllExcept(vec!["test".into()]);
        assert_eq!(
            except.filter_policy(),
            json!({"event_type": [{"anything-but": ["test"]}]})
        );
        assert!(except.matches("anything.else"));
        assert!(!except.matches("test"));
        assert!(only.matches("b"));
        assert!(!only.matches("c"));
    }

    #[test]
    fn queues_override_defaults() {
        let text = "[topic]\nname = \"t\"\n[defaults]\nmax_receive_count = 3\n\
                    [[queues]]\nname = \"a\"\nevent_types = [\"x\"]\n\
                    [[queues]]\nname = \"b\"\nevent_types = [\"x\"]\n\
                    max_receive_count = 9\nvisibility_timeout_secs = 0\n";
        let topology = Topology::from_toml(text).unwrap();
        assert_eq!(topology.queue("a").unwrap().max_receive_count, 3);
        let b = topology.queue("b").unwrap();
        assert_eq!(b.max_receive_count, 9);
        assert_eq!(b.visibility_timeout_secs, 0);
        assert_eq!(b.admin, None);
    }

    #[test]
    fn a_queue_needs_exactly_one_filter() {
        let both = invalid(&minimal(
            "event_types = [\"a\"]\nexcept_event_types = [\"b\"]",
        ));
        assert_eq!(
            both,
            "topology: queue \"q\": set exactly one of event_types, except_event_types"
        );
        let neither = invalid(&minimal(""));
        assert!(neither.contains("set exactly one"), "{neither}");
        let empty = invalid(&minimal("event_types = []"));
        assert!(empty.ends_with("event_types is empty"), "{empty}");
        let twice = invalid(&minimal("event_types = [\"a\", \"a\"]"));
        assert!(twice.contains("twice"), "{twice}");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_position() {
        let line = invalid(&minimal("event_types = [\"a\"]\nvisibility = 5"));
        assert!(line.contains("line 7, column 1"), "{line}");
        assert!(line.contains("unknown field `visibility`"), "{line}");
        let top = invalid("[topic]\nname = \"t\"\n[extra]\n");
        assert!(top.contains("unknown field `extra`"), "{top}");
        let syntax = invalid("[topic\n");
        assert!(syntax.contains("line 1"), "{syntax}");
    }

    #[test]
    fn names_and_ranges_are_checked() {
        let bad_name =
            invalid("[topic]\nname = \"t\"\n[[queues]]\nname = \"a b\"\nevent_types = [\"x\"]\n");
        assert!(bad_name.contains("not a valid name"), "{bad_name}");
        let long = format!(
            "[topic]\nname = \"t\"\n[[queues]]\nname = \"{}\"\nevent_types = [\"x\"]\n",
            "q".repeat(77)
        );
        assert!(invalid(&long).contains("1-76 characters"));
        let short = "q".repeat(76);
        let ok = long.replace(&"q".repeat(77), &short);
        assert_eq!(
            Topology::from_toml(&ok).unwrap().queues[0].dlq_name().len(),
            80
        );

        let receive = invalid(&minimal("event_types = [\"a\"]\nmax_receive_count = 0"));
        assert!(
            receive.contains("max_receive_count = 0 is outside 1..=1000"),
            "{receive}"
        );
        let visibility = invalid(&minimal(
            "event_types = [\"a\"]\nvisibility_timeout_secs = 43201",
        ));
        assert!(
            visibility.contains("visibility_timeout_secs"),
            "{visibility}"
        );
        let retention = invalid(&minimal(
            "event_types = [\"a\"]\nmessage_retention_secs = 1209600\ndlq_retention_secs = 86400",
        ));
        assert!(retention.contains("shorter than"), "{retention}");
        let admin = invalid(&minimal("event_types = [\"a\"]\nadmin = \"localhost\""));
        assert!(admin.contains("host:port"), "{admin}");
        let topic =
            invalid("[topic]\nname = \"\"\n[[queues]]\nname = \"q\"\nevent_types = [\"x\"]\n");
        assert!(topic.contains("topic \"\""), "{topic}");
        assert!(invalid("[topic]\nname = \"t\"\n").contains("no [[queues]]"));
    }

    #[test]
    fn queue_names_and_dlq_names_must_all_differ() {
        let text = "[topic]\nname = \"t\"\n\
                    [[queues]]\nname = \"a\"\nevent_types = [\"x\"]\n\
                    [[queues]]\nname = \"a-dlq\"\nevent_types = [\"x\"]\n";
        assert!(invalid(text).contains("\"a-dlq\" is used twice"));
        let same = "[topic]\nname = \"t\"\n\
                    [[queues]]\nname = \"a\"\nevent_types = [\"x\"]\n\
                    [[queues]]\nname = \"a\"\nevent_types = [\"y\"]\n";
        assert!(invalid(same).contains("\"a\" is used twice"));
    }

    #[test]
    fn load_names_the_file() {
        let missing = Topology::load(Path::new("/nonexistent/topology.toml")).unwrap_err();
        let line = missing.to_string();
        assert!(
            line.starts_with("/nonexistent/topology.toml: cannot read: "),
            "{line}"
        );
        assert!(matches!(missing, TopologyError::Read { .. }));
    }
}
