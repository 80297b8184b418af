//! TEMPORARY placeholder until the real module lands (being written now).
use std::borrow::Cow;
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatternSpec {
    pub name: String,
    pub regex: String,
    pub placeholder: String,
}
#[derive(Debug, thiserror::Error)]
pub enum RedactError {
    #[error("bad {0}")]
    Bad(String),
}
#[derive(Debug, Clone)]
pub struct Redactor {
    rules: Vec<(String, regex::Regex, String)>,
}
impl Redactor {
    pub fn builtin() -> Self {
        Self::with_extra(&[PatternSpec {
            name: "aws-access-key".into(),
            regex: "AKIA[0-9A-Z]{16}".into(),
            placeholder: "AWS_KEY_REDACTED".into(),
        }])
        .unwrap()
    }
    pub fn with_extra(extra: &[PatternSpec]) -> Result<Self, RedactError> {
        let mut rules = vec![(
            "aws-access-key".to_string(),
            regex::Regex::new("AKIA[0-9A-Z]{16}").unwrap(),
            "AWS_KEY_REDACTED".to_string(),
        )];
        for p in extra {
            rules.push((
                p.name.clone(),
                regex::Regex::new(&p.regex).map_err(|e| RedactError::Bad(e.to_string()))?,
                p.placeholder.clone(),
            ));
        }
        Ok(Self { rules })
    }
    pub fn redact<'a>(&self, text: &'a str) -> Cow<'a, str> {
        self.redact_report(text).0
    }
    pub fn redact_report<'a>(&self, text: &'a str) -> (Cow<'a, str>, Vec<String>) {
        let mut out = Cow::Borrowed(text);
        let mut names = vec![];
        for (n, r, p) in &self.rules {
            if r.is_match(&out) {
                names.push(n.clone());
                out = Cow::Owned(r.replace_all(&out, p.as_str()).into_owned());
            }
        }
        (out, names)
    }
    pub fn redact_json(&self, value: &mut serde_json::Value) -> bool {
        match value {
            serde_json::Value::String(s) => {
                let r = self.redact(s);
                if let Cow::Owned(o) = r {
                    *s = o;
                    true
                } else {
                    false
                }
            }
            serde_json::Value::Array(a) => {
                a.iter_mut().fold(false, |acc, v| self.redact_json(v) | acc)
            }
            serde_json::Value::Object(o) => o
                .values_mut()
                .fold(false, |acc, v| self.redact_json(v) | acc),
            _ => false,
        }
    }
}
pub fn load_patterns_file(_p: &std::path::Path) -> Result<Vec<PatternSpec>, RedactError> {
    Ok(vec![])
}
