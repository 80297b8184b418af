//! TEMPORARY stub until the real policy module lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    Safe,
    Restricted,
    Yolo,
}
impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Safe => "safe",
            Self::Restricted => "restricted",
            Self::Yolo => "yolo",
        }
    }
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "safe" => Ok(Self::Safe),
            "restricted" => Ok(Self::Restricted),
            "yolo" => Ok(Self::Yolo),
            _ => Err(format!("unknown mode `{s}`")),
        }
    }
    pub fn describe(self) -> &'static str {
        "stub"
    }
}
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Blocked { rule: String, reason: String },
}
impl Verdict {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::Allowed)
    }
}
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("x")]
    X,
}
#[derive(Debug, Clone)]
pub struct Policy;
impl Policy {
    pub fn builtin() -> Self {
        Policy
    }
    pub fn with_file(_p: &std::path::Path) -> Result<Self, PolicyError> {
        Ok(Policy)
    }
    pub fn check(&self, _m: Mode, c: &str) -> Verdict {
        if c.contains("sudo") {
            Verdict::Blocked {
                rule: "sudo".into(),
                reason: "no".into(),
            }
        } else {
            Verdict::Allowed
        }
    }
}
