//! Which dead-lettered messages a redrive moves.

use crate::dlq::message::DlqMessage;

/// `--event-type` and `--error-contains`; an empty filter matches every
/// message.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Filter {
    /// Any of these `event_type` values (none: any type).
    pub(crate) event_types: Vec<String>,
    /// Text the `error` attribute contains, compared case-insensitively.
    /// A message without `error` (moved by the redrive policy) does not
    /// match.
    pub(crate) error_contains: Option<String>,
}

impl Filter {
    /// Whether `message` is selected.
    pub(crate) fn matches(&self, message: &DlqMessage) -> bool {
        let type_matches = self.event_types.is_empty()
            || message
                .event_type()
                .is_some_and(|t| self.event_types.iter().any(|wanted| wanted == t));
        let error_matches = self.error_contains.as_deref().is_none_or(|needle| {
            message.give_up().is_some_and(|give_up| {
                give_up
                    .error
                    .to_lowercase()
                    .contains(&needle.to_lowercase())
            })
        });
        type_matches && error_matches
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq::message::tests::message;

    #[test]
    fn filters_combine_type_and_error() {
        let crm_down = message(
            "a",
            &[
                ("event_type", "referral.completed"),
                ("error", "CRM answered 503"),
            ],
        );
        let bad_payload = message(
            "b",
            &[("event_type", "link.clicked"), ("error", "bad JSON")],
        );
        let by_policy = message("c", &[("event_type", "referral.completed")]);

        let everything = Filter::default();
        assert!(
            [&crm_down, &bad_payload, &by_policy]
                .iter()
                .all(|m| everything.matches(m))
        );

        let referrals = Filter {
            event_types: vec!["referral.completed".into(), "other".into()],
            error_contains: None,
        };
        assert!(referrals.matches(&crm_down));
        assert!(!referrals.matches(&bad_payload));
        assert!(referrals.matches(&by_policy));

        let outage = Filter {
            event_types: vec!["referral.completed".into()],
            error_contains: Some("crm ANSWERED".into()),
        };
        assert!(outage.matches(&crm_down));
        assert!(!outage.matches(&bad_payload));
        assert!(!outage.matches(&by_policy), "no error attribute");
    }
}
