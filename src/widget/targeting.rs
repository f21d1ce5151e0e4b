//! Chatflow targeting: which chatflow (if any) the widget shows on a page.
//!
//! A chatflow's `targeting` is a list of rules and whether `any` or `all` of them must
//! hold. Rules read the page URL the widget reports:
//!
//! | rule | holds when |
//! |---|---|
//! | `all_pages` | always |
//! | `url_is` | the URL without query and fragment equals `value` (a trailing `/` aside); a `value` starting with `/` is compared with the path alone |
//! | `url_contains` | the URL (fragment dropped) contains `value` |
//! | `url_starts_with` | the URL (fragment dropped) starts with `value`; a `/…` value: the path does |
//! | `url_glob` | the URL (fragment dropped) matches `value`, where `*` is any run of characters and `?` one; a `/…` value: the path does |
//! | `query_param_equals` | the query has `param` (percent-decoded) equal to `value` |
//!
//! Among the enabled chatflows that match, the lowest `priority` wins; ties go to the
//! oldest (then the smallest id), so the choice never depends on list order.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most rules in one chatflow.
pub const MAX_RULES: usize = 50;
/// Longest rule value.
pub const MAX_VALUE: usize = 2048;

/// Whether any or all rules must hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema, Default)]
#[serde(rename_all = "snake_case")]
pub enum MatchMode {
    /// At least one rule.
    #[default]
    Any,
    /// Every rule.
    All,
}

/// One targeting rule (see the module documentation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Rule {
    /// Every page.
    AllPages,
    /// The URL (or path) is exactly this.
    UrlIs {
        /// URL or `/path`.
        value: String,
    },
    /// The URL contains this.
    UrlContains {
        /// Any text.
        value: String,
    },
    /// The URL (or path) starts with this.
    UrlStartsWith {
        /// URL or `/path` prefix.
        value: String,
    },
    /// The URL (or path) matches this glob (`*`, `?`).
    UrlGlob {
        /// Glob over the URL or `/path`.
        value: String,
    },
    /// A query parameter has this value.
    QueryParamEquals {
        /// Parameter name.
        param: String,
        /// Expected value.
        value: String,
    },
}

/// A chatflow's targeting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Targeting {
    /// `any` (default) or `all`.
    #[serde(default, rename = "match")]
    pub match_mode: MatchMode,
    /// The rules; at least one.
    pub rules: Vec<Rule>,
}

impl Default for Targeting {
    fn default() -> Self {
        Self {
            match_mode: MatchMode::Any,
            rules: vec![Rule::AllPages],
        }
    }
}

impl Targeting {
    /// Check sizes and values; the error names the field under `targeting`.
    pub fn validate(&self) -> Result<(), String> {
        if self.rules.is_empty() {
            return Err("targeting.rules: at least one rule (use {\"kind\":\"all_pages\"})".into());
        }
        if self.rules.len() > MAX_RULES {
            return Err(format!("targeting.rules: at most {MAX_RULES} rules"));
        }
        for (i, r) in self.rules.iter().enumerate() {
            let (value, param) = match r {
                Rule::AllPages => continue,
                Rule::UrlIs { value }
                | Rule::UrlContains { value }
                | Rule::UrlStartsWith { value }
                | Rule::UrlGlob { value } => (value, None),
                Rule::QueryParamEquals { param, value } => (value, Some(param)),
            };
            if value.is_empty() && param.is_none() {
                return Err(format!("targeting.rules[{i}].value: must not be empty"));
            }
            if value.len() > MAX_VALUE {
                return Err(format!(
                    "targeting.rules[{i}].value: at most {MAX_VALUE} bytes"
                ));
            }
            if let Some(p) = param
                && (p.is_empty() || p.len() > 200)
            {
                return Err(format!("targeting.rules[{i}].param: 1 to 200 bytes"));
            }
        }
        Ok(())
    }

    /// Whether the page `url` is targeted.
    pub fn matches(&self, url: &str) -> bool {
        let page = Page::parse(url);
        match self.match_mode {
            MatchMode::Any => self.rules.iter().any(|r| r.holds(&page)),
            MatchMode::All => self.rules.iter().all(|r| r.holds(&page)),
        }
    }
}

/// A page URL cut into the parts rules read.
#[derive(Debug)]
struct Page<'a> {
    /// The URL without its fragment.
    full: &'a str,
    /// The URL without query and fragment.
    base: &'a str,
    /// The path (`/` when none).
    path: &'a str,
    /// The query, without `?`.
    query: &'a str,
}

impl<'a> Page<'a> {
    fn parse(url: &'a str) -> Page<'a> {
        let full = url.split_once('#').map_or(url, |(u, _)| u);
        let (base, query) = full.split_once('?').unwrap_or((full, ""));
        let path = match base.find("://") {
            Some(i) => {
                let after = &base[i + 3..];
                after.find('/').map_or("/", |j| &after[j..])
            }
            None => base,
        };
        let path = if path.is_empty() { "/" } else { path };
        Page {
            full,
            base,
            path,
            query,
        }
    }
}

fn trim_slash(s: &str) -> &str {
    if s.len() > 1 {
        s.strip_suffix('/').unwrap_or(s)
    } else {
        s
    }
}

impl Rule {
    fn holds(&self, page: &Page<'_>) -> bool {
        match self {
            Rule::AllPages => true,
            Rule::UrlIs { value } => {
                let value = value.split(['?', '#']).next().unwrap_or_default();
                let target = if value.starts_with('/') {
                    page.path
                } else {
                    page.base
                };
                trim_slash(target) == trim_slash(value)
            }
            Rule::UrlContains { value } => page.full.contains(value.as_str()),
            Rule::UrlStartsWith { value } => {
                if value.starts_with('/') {
                    page.path.starts_with(value.as_str())
                } else {
                    page.full.starts_with(value.as_str())
                }
            }
            Rule::UrlGlob { value } => {
                if value.starts_with('/') {
                    glob(value, page.path)
                } else {
                    glob(value, page.full)
                }
            }
            Rule::QueryParamEquals { param, value } => page
                .query
                .split('&')
                .filter_map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    Some((percent_decode(k)?, percent_decode(v)?))
                })
                .any(|(k, v)| k == *param && v == *value),
        }
    }
}

/// Whether `text` matches `pattern`, where `*` matches any run of characters (`/`
/// included) and `?` exactly one. Linear-time backtracking on the last `*`.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || (p[pi] != '*' && p[pi] == t[ti])) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// `application/x-www-form-urlencoded` decoding (`+` is a space); `None` when the
/// escapes are not valid UTF-8.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                    (Some(h), Some(l)) => {
                        out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                        i += 2;
                    }
                    _ => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

/// What selection needs to know of a chatflow.
#[derive(Debug, Clone, Copy)]
pub struct Candidate<'a> {
    /// Disabled chatflows never show.
    pub enabled: bool,
    /// Lower wins.
    pub priority: i64,
    /// Creation time (older wins a tie).
    pub created_at: i64,
    /// Last tie-break.
    pub id: &'a str,
    /// Its rules.
    pub targeting: &'a Targeting,
}

/// The index of the chatflow to show on `url`: the enabled, matching one with the
/// lowest `(priority, created_at, id)`; `None` when none matches.
pub fn select(candidates: &[Candidate<'_>], url: &str) -> Option<usize> {
    candidates
        .iter()
        .enumerate()
        .filter(|(_, c)| c.enabled && c.targeting.matches(url))
        .min_by(|(_, a), (_, b)| {
            (a.priority, a.created_at, a.id).cmp(&(b.priority, b.created_at, b.id))
        })
        .map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    fn t(rules: serde_json::Value, mode: &str) -> Targeting {
        serde_json::from_value(json!({"match": mode, "rules": rules})).unwrap()
    }

    #[test]
    fn each_rule_kind() {
        let url = "https://shop.example.com/pricing/?plan=pro&utm_source=ads%20x#faq";
        let yes = [
            json!({"kind": "all_pages"}),
            json!({"kind": "url_is", "value": "https://shop.example.com/pricing"}),
            json!({"kind": "url_is", "value": "/pricing"}),
            json!({"kind": "url_contains", "value": "plan=pro"}),
            json!({"kind": "url_starts_with", "value": "https://shop.example.com/pri"}),
            json!({"kind": "url_starts_with", "value": "/pricing"}),
            json!({"kind": "url_glob", "value": "https://*.example.com/pricing*"}),
            json!({"kind": "url_glob", "value": "/pri?ing/"}),
            json!({"kind": "query_param_equals", "param": "utm_source", "value": "ads x"}),
        ];
        for r in yes {
            assert!(t(json!([r.clone()]), "any").matches(url), "{r}");
        }
        let no = [
            json!({"kind": "url_is", "value": "/pricing/pro"}),
            json!({"kind": "url_is", "value": "https://shop.example.com/"}),
            json!({"kind": "url_contains", "value": "faq"}),
            json!({"kind": "url_starts_with", "value": "/blog"}),
            json!({"kind": "url_glob", "value": "/blog/*"}),
            json!({"kind": "url_glob", "value": "https://example.com/*"}),
            json!({"kind": "query_param_equals", "param": "plan", "value": "free"}),
            json!({"kind": "query_param_equals", "param": "utm", "value": "ads x"}),
        ];
        for r in no {
            assert!(!t(json!([r.clone()]), "any").matches(url), "{r}");
        }
    }

    #[test]
    fn any_and_all() {
        let rules = json!([{"kind": "url_contains", "value": "/pricing"},
                           {"kind": "query_param_equals", "param": "utm_source", "value": "ads"}]);
        let any = t(rules.clone(), "any");
        let all = t(rules, "all");
        assert!(any.matches("https://x.com/pricing"));
        assert!(!all.matches("https://x.com/pricing"));
        assert!(all.matches("https://x.com/pricing?utm_source=ads"));
        assert!(!any.matches("https://x.com/blog"));
    }

    #[test]
    fn unknown_rule_fields_and_kinds_are_refused() {
        assert!(
            serde_json::from_value::<Targeting>(json!({"rules": [{"kind": "url_is"}]})).is_err()
        );
        assert!(serde_json::from_value::<Targeting>(json!({"rules": [{"kind": "nope"}]})).is_err());
        assert!(
            serde_json::from_value::<Targeting>(
                json!({"rules": [{"kind": "url_is", "value": "/", "extra": 1}]})
            )
            .is_err()
        );
        assert!(
            t(json!([]), "any").validate().is_err(),
            "no rule at all is refused"
        );
    }

    #[test]
    fn glob_basics() {
        assert!(glob("*", ""));
        assert!(glob("a*c", "abbbc"));
        assert!(glob("a*c*", "acxc"));
        assert!(!glob("a*c", "abcd"));
        assert!(glob("?", "é"));
        assert!(!glob("??", "é"));
        assert!(glob("**a**", "xxa"));
    }

    #[test]
    fn priority_then_age_then_id() {
        let all = Targeting::default();
        let pricing = t(json!([{"kind": "url_is", "value": "/pricing"}]), "any");
        let c = |enabled, priority, created_at, id, targeting| Candidate {
            enabled,
            priority,
            created_at,
            id,
            targeting,
        };
        let flows = [
            c(true, 100, 1, "a", &all),
            c(true, 10, 5, "b", &pricing),
            c(false, 1, 0, "c", &all),
            c(true, 10, 2, "d", &pricing),
        ];
        assert_eq!(select(&flows, "https://x.com/pricing"), Some(3));
        assert_eq!(select(&flows, "https://x.com/"), Some(0));
        assert_eq!(select(&flows[1..2], "https://x.com/"), None);
    }

    proptest! {
        #[test]
        fn a_glob_without_wildcards_is_equality(a in "[a-z/.:]{0,12}", b in "[a-z/.:]{0,12}") {
            prop_assert_eq!(glob(&a, &b), a == b);
            prop_assert!(glob(&a, &a));
        }

        #[test]
        fn star_around_any_substring_matches(s in "[a-z/?=&.]{0,30}", i in 0usize..30, j in 0usize..30) {
            let (i, j) = (i.min(s.len()), j.min(s.len()));
            let (lo, hi) = (i.min(j), i.max(j));
            let part = &s[lo..hi];
            let pattern = format!("*{}*", part.replace('?', "*"));
            prop_assert!(glob(&pattern, &s));
        }

        #[test]
        fn selection_ignores_order(
            prios in proptest::collection::vec((0i64..4, 0i64..4, any::<bool>(), any::<bool>()), 1..8),
            rotate in 0usize..8,
        ) {
            let all = Targeting::default();
            let none = t(json!([{"kind": "url_is", "value": "/elsewhere"}]), "any");
            let ids: Vec<String> = (0..prios.len()).map(|i| format!("id{i}")).collect();
            let cands: Vec<Candidate<'_>> = prios.iter().zip(&ids).map(|((p, c, en, m), id)| Candidate {
                enabled: *en, priority: *p, created_at: *c, id, targeting: if *m { &all } else { &none },
            }).collect();
            let mut rotated = cands.clone();
            rotated.rotate_left(rotate % cands.len());
            let pick = select(&cands, "https://x.com/").map(|i| cands[i].id);
            let pick2 = select(&rotated, "https://x.com/").map(|i| rotated[i].id);
            prop_assert_eq!(pick, pick2);
            // The winner is a matching, enabled one with the minimal key.
            if let Some(w) = pick {
                let w = cands.iter().find(|c| c.id == w).unwrap();
                for c in &cands {
                    if c.enabled && c.targeting.matches("https://x.com/") {
                        prop_assert!((w.priority, w.created_at, w.id) <= (c.priority, c.created_at, c.id));
                    }
                }
            } else {
                prop_assert!(cands.iter().all(|c| !c.enabled || !c.targeting.matches("https://x.com/")));
            }
        }
    }
}
