//! The four rules of SPEC §9, as pure functions of an event's facts and
//! the window counts the database returns.
//!
//! Windows are whole minutes of event time, sliding by a minute: a window
//! of `W` minutes ending with minute `e` covers the minutes `e - (W - 1)`
//! through `e`. Each event is evaluated after its own count was added:
//! `broken_link` on the window that ends in the event's minute (the last
//! `W` minutes as of that click), `referral_fraud` on every window that
//! holds the event's minute (so a referral arriving late still completes
//! the burst it belongs to, whatever the order of arrival).
//!
//! | rule | counts in | fires when | alert key |
//! |---|---|---|---|
//! | `suspicious_country` | — | a click's country is in the list | `suspicious_country:<country>:<campaign or ->` |
//! | `referral_fraud` | `referral_ip:<ip>`, `referral_referrer:<id>` | more than N referrals in the window | `referral_fraud:ip:<ip>`, `referral_fraud:referrer:<id>` |
//! | `broken_link` | `click:<campaign>`, `conversion:<campaign>` | at least N clicks and no install or deferred-link claim in the window | `broken_link:<campaign>` |
//! | `click_spike` | `click:<campaign>` | clicks in the event's minute at least the minimum and more than K × the mean of the baseline minutes before it | `click_spike:<campaign>` |
//!
//! The rules are level-triggered: every event evaluates its window, and
//! the cooldown per alert key (in the store) turns a condition that holds
//! for a while into one alert per incident.

use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

use hookfleet_store::{WindowCount, minute_of};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::facts::{Facts, Kind};

/// One of the rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Rule {
    /// A click from a configured country.
    #[value(name = "suspicious_country")]
    SuspiciousCountry,
    /// Too many referrals from one IP or for one referrer.
    #[value(name = "referral_fraud")]
    ReferralFraud,
    /// Clicks without installs: the campaign's link is probably broken.
    #[value(name = "broken_link")]
    BrokenLink,
    /// A campaign's clicks far above their recent baseline.
    #[value(name = "click_spike")]
    ClickSpike,
}

impl Rule {
    /// Every rule.
    pub const ALL: [Rule; 4] = [
        Self::SuspiciousCountry,
        Self::ReferralFraud,
        Self::BrokenLink,
        Self::ClickSpike,
    ];

    /// The name stored in `alerts.rule`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SuspiciousCountry => "suspicious_country",
            Self::ReferralFraud => "referral_fraud",
            Self::BrokenLink => "broken_link",
            Self::ClickSpike => "click_spike",
        }
    }
}

/// `suspicious_country`'s setting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SuspiciousCountry {
    /// Upper-case ISO 3166-1 alpha-2 codes.
    pub countries: BTreeSet<String>,
}

/// `referral_fraud`'s thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReferralFraud {
    /// Fires when the window holds more than this many referrals.
    pub max_events: u64,
    /// The window, in minutes (at least 1).
    pub window_mins: u32,
}

/// `broken_link`'s thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokenLink {
    /// Fires from this many clicks in the window (with no conversion).
    pub min_clicks: u64,
    /// The window, in minutes (at least 1).
    pub window_mins: u32,
}

/// `click_spike`'s thresholds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClickSpike {
    /// Clicks in the minute must be more than this times the baseline.
    pub factor: f64,
    /// And at least this many.
    pub min_clicks: u64,
    /// The baseline: the mean per minute over this many minutes before.
    pub baseline_mins: u32,
}

/// The enabled rules and their thresholds.
#[derive(Debug, Clone, PartialEq)]
pub struct Rules {
    /// `None` when the rule is off.
    pub suspicious_country: Option<SuspiciousCountry>,
    /// `None` when the rule is off.
    pub referral_fraud: Option<ReferralFraud>,
    /// `None` when the rule is off.
    pub broken_link: Option<BrokenLink>,
    /// `None` when the rule is off.
    pub click_spike: Option<ClickSpike>,
    /// How long, in event time, an alert key stays quiet after it fired.
    pub cooldown: Duration,
}

/// An alert a rule wants to fire (the cooldown may still suppress it).
#[derive(Debug, Clone, PartialEq)]
pub struct Firing {
    /// Which rule.
    pub rule: Rule,
    /// The incident's key.
    pub alert_key: String,
    /// What the alert says, stored as `alerts.details` and rendered into
    /// the Slack message.
    pub details: Value,
}

/// What the database must do for one event.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Plan {
    /// Subjects to lock, so that events of one subject are evaluated one
    /// after the other.
    pub subjects: Vec<String>,
    /// Scopes this event adds one to, in its minute.
    pub counts: Vec<String>,
    /// Scopes whose minutes from [`Plan::read_from`] to the event's
    /// minute the rules read.
    pub reads: Vec<String>,
    /// The first minute read.
    pub read_from: Option<OffsetDateTime>,
    /// The last minute read: the event's own, or later for
    /// `referral_fraud`, which looks at every window holding the event.
    pub read_to: Option<OffsetDateTime>,
    /// Alerts that need no window (`suspicious_country`).
    pub immediate: Vec<Firing>,
}

impl Plan {
    /// Whether the event concerns no rule at all.
    pub fn is_empty(&self) -> bool {
        self.counts.is_empty() && self.immediate.is_empty()
    }
}

/// The scope names, in one place.
fn click_scope(campaign: &str) -> String {
    format!("click:{campaign}")
}

fn conversion_scope(campaign: &str) -> String {
    format!("conversion:{campaign}")
}

fn referral_ip_scope(ip: &str) -> String {
    format!("referral_ip:{ip}")
}

fn referral_referrer_scope(id: &str) -> String {
    format!("referral_referrer:{id}")
}

fn minutes(n: u32) -> Duration {
    Duration::from_secs(60 * u64::from(n))
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_else(|_| at.to_string())
}

impl Rules {
    /// Whether any rule is on.
    pub fn any_enabled(&self) -> bool {
        self.suspicious_country.is_some()
            || self.referral_fraud.is_some()
            || self.broken_link.is_some()
            || self.click_spike.is_some()
    }

    /// The enabled rules, by name.
    pub fn enabled(&self) -> Vec<Rule> {
        let on = [
            self.suspicious_country.is_some(),
            self.referral_fraud.is_some(),
            self.broken_link.is_some(),
            self.click_spike.is_some(),
        ];
        Rule::ALL
            .into_iter()
            .zip(on)
            .filter_map(|(rule, on)| on.then_some(rule))
            .collect()
    }

    /// What the database must count and read for `facts` (with its
    /// country resolved), and the alerts it raises by itself.
    pub fn plan(&self, facts: &Facts) -> Plan {
        let minute = minute_of(facts.occurred_at);
        let mut plan = Plan::default();
        let mut read_back = 0u32;
        let mut read_ahead = 0u32;

        match facts.kind {
            Kind::Click => {
                if let Some(firing) = self.suspicious_click(facts) {
                    plan.immediate.push(firing);
                }
                let window_rules = self.broken_link.is_some() || self.click_spike.is_some();
                if let (true, Some(campaign)) = (window_rules, &facts.campaign) {
                    plan.subjects.push(format!("campaign:{campaign}"));
                    plan.counts.push(click_scope(campaign));
                    plan.reads.push(click_scope(campaign));
                    if let Some(rule) = self.broken_link {
                        plan.reads.push(conversion_scope(campaign));
                        read_back = read_back.max(rule.window_mins.saturating_sub(1));
                    }
                    if let Some(rule) = self.click_spike {
                        read_back = read_back.max(rule.baseline_mins);
                    }
                }
            }
            Kind::Conversion => {
                if let (Some(_), Some(campaign)) = (self.broken_link, &facts.campaign) {
                    plan.subjects.push(format!("campaign:{campaign}"));
                    plan.counts.push(conversion_scope(campaign));
                }
            }
            Kind::Referral => {
                if let Some(rule) = self.referral_fraud {
                    let scopes = [
                        facts.ip.as_deref().map(referral_ip_scope),
                        facts.referrer_id.as_deref().map(referral_referrer_scope),
                    ];
                    for scope in scopes.into_iter().flatten() {
                        plan.subjects.push(scope.clone());
                        plan.counts.push(scope.clone());
                        plan.reads.push(scope);
                    }
                    read_back = read_back.max(rule.window_mins.saturating_sub(1));
                    read_ahead = rule.window_mins.saturating_sub(1);
                }
            }
            Kind::Other => {}
        }

        if !plan.reads.is_empty() {
            plan.read_from = Some(minute - minutes(read_back));
            plan.read_to = Some(minute + minutes(read_ahead));
        }
        plan
    }

    /// The window alerts `facts` raises, given the counts read for its
    /// [`Plan`] (which include the event itself).
    pub fn evaluate(&self, facts: &Facts, counts: &[WindowCount]) -> Vec<Firing> {
        let minute = minute_of(facts.occurred_at);
        let counts = Counts::new(counts);
        let mut firings = Vec::new();

        match (facts.kind, &facts.campaign) {
            (Kind::Click, Some(campaign)) => {
                if let Some(rule) = self.broken_link {
                    firings.extend(broken_link(rule, campaign, minute, &counts));
                }
                if let Some(rule) = self.click_spike {
                    firings.extend(click_spike(rule, campaign, minute, &counts));
                }
            }
            (Kind::Referral, _) => {
                if let Some(rule) = self.referral_fraud {
                    let subjects = [
                        (
                            "ip",
                            facts.ip.as_deref().map(|ip| (ip, referral_ip_scope(ip))),
                        ),
                        (
                            "referrer",
                            facts
                                .referrer_id
                                .as_deref()
                                .map(|id| (id, referral_referrer_scope(id))),
                        ),
                    ];
                    for (by, subject) in subjects {
                        if let Some((value, scope)) = subject {
                            firings.extend(referral_fraud(
                                rule, by, value, &scope, minute, facts, &counts,
                            ));
                        }
                    }
                }
            }
            _ => {}
        }
        firings
    }

    fn suspicious_click(&self, facts: &Facts) -> Option<Firing> {
        let rule = self.suspicious_country.as_ref()?;
        let (country, source) = facts.country.as_ref()?;
        if !rule.countries.contains(country) {
            return None;
        }
        let campaign = facts.campaign.as_deref().unwrap_or("-");
        Some(Firing {
            rule: Rule::SuspiciousCountry,
            alert_key: format!("suspicious_country:{country}:{campaign}"),
            details: json!({
                "country": country,
                "country_source": source.as_str(),
                "campaign": facts.campaign,
                "ip": facts.ip,
                "url": facts.url,
                "event_id": facts.event_id,
                "occurred_at": rfc3339(facts.occurred_at),
            }),
        })
    }
}

/// Window counts by scope and minute.
struct Counts<'a> {
    by_scope: HashMap<&'a str, Vec<(OffsetDateTime, i64)>>,
}

impl<'a> Counts<'a> {
    fn new(counts: &'a [WindowCount]) -> Self {
        let mut by_scope: HashMap<&str, Vec<(OffsetDateTime, i64)>> = HashMap::new();
        for c in counts {
            by_scope
                .entry(c.scope.as_str())
                .or_default()
                .push((c.window_start, c.count));
        }
        Self { by_scope }
    }

    /// The sum of `scope`'s counts over the minutes `from..=to`.
    fn sum(&self, scope: &str, from: OffsetDateTime, to: OffsetDateTime) -> u64 {
        self.by_scope.get(scope).map_or(0, |minutes| {
            minutes
                .iter()
                .filter(|(at, _)| (from..=to).contains(at))
                .map(|(_, n)| (*n).max(0) as u64)
                .sum()
        })
    }
}

/// The window of `length` minutes ending with `minute`: first minute,
/// and the end (exclusive).
fn window(minute: OffsetDateTime, length: u32) -> (OffsetDateTime, OffsetDateTime) {
    (
        minute - minutes(length.saturating_sub(1)),
        minute + minutes(1),
    )
}

fn broken_link(
    rule: BrokenLink,
    campaign: &str,
    minute: OffsetDateTime,
    counts: &Counts<'_>,
) -> Option<Firing> {
    let (start, end) = window(minute, rule.window_mins);
    let clicks = counts.sum(&click_scope(campaign), start, minute);
    let conversions = counts.sum(&conversion_scope(campaign), start, minute);
    if clicks < rule.min_clicks || conversions > 0 {
        return None;
    }
    Some(Firing {
        rule: Rule::BrokenLink,
        alert_key: format!("broken_link:{campaign}"),
        details: json!({
            "campaign": campaign,
            "clicks": clicks,
            "conversions": conversions,
            "min_clicks": rule.min_clicks,
            "window_mins": rule.window_mins,
            "window_start": rfc3339(start),
            "window_end": rfc3339(end),
        }),
    })
}

fn click_spike(
    rule: ClickSpike,
    campaign: &str,
    minute: OffsetDateTime,
    counts: &Counts<'_>,
) -> Option<Firing> {
    let scope = click_scope(campaign);
    let clicks = counts.sum(&scope, minute, minute);
    let baseline_start = minute - minutes(rule.baseline_mins);
    let baseline_total = counts.sum(&scope, baseline_start, minute - minutes(1));
    let baseline = baseline_total as f64 / f64::from(rule.baseline_mins);
    if clicks < rule.min_clicks || clicks as f64 <= rule.factor * baseline {
        return None;
    }
    Some(Firing {
        rule: Rule::ClickSpike,
        alert_key: format!("click_spike:{campaign}"),
        details: json!({
            "campaign": campaign,
            "clicks": clicks,
            "baseline_per_minute": (baseline * 100.0).round() / 100.0,
            "factor": rule.factor,
            "min_clicks": rule.min_clicks,
            "baseline_mins": rule.baseline_mins,
            "minute_start": rfc3339(minute),
            "baseline_start": rfc3339(baseline_start),
        }),
    })
}

fn referral_fraud(
    rule: ReferralFraud,
    by: &str,
    value: &str,
    scope: &str,
    minute: OffsetDateTime,
    facts: &Facts,
    counts: &Counts<'_>,
) -> Option<Firing> {
    // Every window that holds the event, so that the answer does not
    // depend on the order events arrive in: the busiest one decides (the
    // earliest among equals).
    let (start, end, referrals) = (0..rule.window_mins)
        .map(|ahead| {
            let (start, end) = window(minute + minutes(ahead), rule.window_mins);
            (start, end, counts.sum(scope, start, end - minutes(1)))
        })
        .fold(
            None,
            |best: Option<(OffsetDateTime, OffsetDateTime, u64)>, w| match best {
                Some(b) if b.2 >= w.2 => Some(b),
                _ => Some(w),
            },
        )?;
    if referrals <= rule.max_events {
        return None;
    }
    let mut details = json!({
        "by": by,
        "referrals": referrals,
        "max_events": rule.max_events,
        "window_mins": rule.window_mins,
        "window_start": rfc3339(start),
        "window_end": rfc3339(end),
        "last_event_type": facts.event_type,
    });
    details[by] = Value::String(value.to_owned());
    Some(Firing {
        rule: Rule::ReferralFraud,
        alert_key: format!("referral_fraud:{by}:{value}"),
        details,
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::facts::CountrySource;

    const AT: OffsetDateTime = datetime!(2026-12-03 10:15:30 UTC);

    fn rules() -> Rules {
        Rules {
            suspicious_country: Some(SuspiciousCountry {
                countries: ["XX".to_owned(), "KP".to_owned()].into(),
            }),
            referral_fraud: Some(ReferralFraud {
                max_events: 3,
                window_mins: 10,
            }),
            broken_link: Some(BrokenLink {
                min_clicks: 5,
                window_mins: 15,
            }),
            click_spike: Some(ClickSpike {
                factor: 3.0,
                min_clicks: 10,
                baseline_mins: 5,
            }),
            cooldown: Duration::from_secs(1800),
        }
    }

    fn facts(kind: Kind) -> Facts {
        Facts {
            event_id: "e".into(),
            event_type: "link.clicked".into(),
            kind,
            occurred_at: AT,
            campaign: Some("spring".into()),
            ip: Some("203.0.113.9".into()),
            referrer_id: Some("u7".into()),
            url: None,
            country: None,
        }
    }

    fn count(scope: &str, minutes_before: u32, count: i64) -> WindowCount {
        WindowCount {
            scope: scope.into(),
            window_start: minute_of(AT) - minutes(minutes_before),
            count,
        }
    }

    fn fired(firings: &[Firing]) -> Vec<&str> {
        firings.iter().map(|f| f.alert_key.as_str()).collect()
    }

    #[test]
    fn a_click_plans_its_campaign_and_the_longest_look_back() {
        let plan = rules().plan(&facts(Kind::Click));
        assert_eq!(plan.subjects, ["campaign:spring"]);
        assert_eq!(plan.counts, ["click:spring"]);
        assert_eq!(plan.reads, ["click:spring", "conversion:spring"]);
        // broken_link reads 14 minutes back, click_spike 5.
        assert_eq!(plan.read_from, Some(minute_of(AT) - minutes(14)));
        assert_eq!(plan.read_to, Some(minute_of(AT)));
        assert!(plan.immediate.is_empty());

        let mut no_campaign = facts(Kind::Click);
        no_campaign.campaign = None;
        assert!(rules().plan(&no_campaign).is_empty());
    }

    #[test]
    fn conversions_count_only_for_broken_link() {
        let plan = rules().plan(&facts(Kind::Conversion));
        assert_eq!(plan.counts, ["conversion:spring"]);
        assert!(plan.reads.is_empty());
        let off = Rules {
            broken_link: None,
            ..rules()
        };
        assert!(off.plan(&facts(Kind::Conversion)).is_empty());
    }

    #[test]
    fn suspicious_country_fires_for_listed_countries_only() {
        let mut click = facts(Kind::Click);
        click.country = Some(("XX".into(), CountrySource::Event));
        let plan = rules().plan(&click);
        assert_eq!(fired(&plan.immediate), ["suspicious_country:XX:spring"]);
        assert_eq!(plan.immediate[0].details["country_source"], "event");

        click.country = Some(("GB".into(), CountrySource::GeoIp));
        assert!(rules().plan(&click).immediate.is_empty());
        let mut referral = facts(Kind::Referral);
        referral.country = Some(("XX".into(), CountrySource::Event));
        assert!(rules().plan(&referral).immediate.is_empty(), "clicks only");
    }

    #[test]
    fn broken_link_needs_enough_clicks_and_no_conversion() {
        let click = facts(Kind::Click);
        let four = [count("click:spring", 0, 2), count("click:spring", 14, 2)];
        assert!(rules().evaluate(&click, &four).is_empty());

        let five = [count("click:spring", 0, 3), count("click:spring", 14, 2)];
        let firings = rules().evaluate(&click, &five);
        assert_eq!(fired(&firings), ["broken_link:spring"]);
        let details = &firings[0].details;
        assert_eq!(details["clicks"], 5);
        assert_eq!(details["window_start"], "2026-12-03T10:01:00Z");
        assert_eq!(details["window_end"], "2026-12-03T10:16:00Z");

        // A click older than the window does not count; a conversion in
        // it clears the campaign.
        let old = [count("click:spring", 0, 4), count("click:spring", 15, 9)];
        assert!(rules().evaluate(&click, &old).is_empty());
        let converted = [
            count("click:spring", 0, 9),
            count("conversion:spring", 3, 1),
        ];
        assert!(rules().evaluate(&click, &converted).is_empty());
    }

    #[test]
    fn click_spike_compares_the_minute_with_its_baseline() {
        let only_spike = Rules {
            broken_link: None,
            ..rules()
        };
        let click = facts(Kind::Click);
        // Baseline 10 clicks over 5 minutes = 2/min; 3 × 2 = 6.
        let baseline = [
            count("click:spring", 1, 4),
            count("click:spring", 5, 6),
            count("click:spring", 6, 100), // before the baseline
        ];
        let with = |now: i64| {
            let mut counts = baseline.to_vec();
            counts.push(count("click:spring", 0, now));
            only_spike.evaluate(&click, &counts)
        };
        assert!(with(9).is_empty(), "above 3x but under the minimum");
        let firings = with(10);
        assert_eq!(fired(&firings), ["click_spike:spring"]);
        assert_eq!(firings[0].details["baseline_per_minute"], 2.0);

        let busy = [count("click:spring", 1, 20), count("click:spring", 0, 12)];
        assert!(only_spike.evaluate(&click, &busy).is_empty(), "12 <= 3 x 4");
    }

    #[test]
    fn referral_fraud_counts_more_than_n_per_ip_and_referrer() {
        let referral = facts(Kind::Referral);
        let plan = rules().plan(&referral);
        assert_eq!(
            plan.counts,
            ["referral_ip:203.0.113.9", "referral_referrer:u7"]
        );
        assert_eq!(plan.read_from, Some(minute_of(AT) - minutes(9)));
        assert_eq!(plan.read_to, Some(minute_of(AT) + minutes(9)));

        let three = [
            count("referral_ip:203.0.113.9", 9, 3),
            count("referral_referrer:u7", 0, 3),
        ];
        assert!(
            rules().evaluate(&referral, &three).is_empty(),
            "not more than 3"
        );
        let four = [
            count("referral_ip:203.0.113.9", 0, 4),
            count("referral_referrer:u7", 0, 1),
        ];
        let firings = rules().evaluate(&referral, &four);
        assert_eq!(fired(&firings), ["referral_fraud:ip:203.0.113.9"]);
        assert_eq!(firings[0].details["ip"], "203.0.113.9");
        assert_eq!(firings[0].details["referrals"], 4);

        // Whichever of the burst arrives last completes it: a window that
        // holds the event and later minutes counts too.
        let later = [
            count("referral_ip:203.0.113.9", 0, 1),
            WindowCount {
                scope: "referral_ip:203.0.113.9".into(),
                window_start: minute_of(AT) + minutes(9),
                count: 3,
            },
        ];
        let firings = rules().evaluate(&referral, &later);
        assert_eq!(firings[0].details["window_start"], "2026-12-03T10:15:00Z");
        assert_eq!(firings[0].details["window_end"], "2026-12-03T10:25:00Z");
        let too_far = [
            count("referral_ip:203.0.113.9", 0, 1),
            WindowCount {
                scope: "referral_ip:203.0.113.9".into(),
                window_start: minute_of(AT) + minutes(10),
                count: 3,
            },
        ];
        assert!(rules().evaluate(&referral, &too_far).is_empty());
    }

    #[test]
    fn rules_that_are_off_plan_nothing() {
        let off = Rules {
            suspicious_country: None,
            referral_fraud: None,
            broken_link: None,
            click_spike: None,
            cooldown: Duration::from_secs(60),
        };
        assert!(!off.any_enabled());
        for kind in [Kind::Click, Kind::Conversion, Kind::Referral, Kind::Other] {
            assert!(off.plan(&facts(kind)).is_empty());
        }
        assert_eq!(rules().enabled(), Rule::ALL);
    }
}
