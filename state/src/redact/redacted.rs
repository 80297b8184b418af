//! [`Redacted`]: text that has been through the redactor, the only form the store accepts for
//! agent text.

/// Text that has been through the redactor. Only [`Redactor`] makes one
/// (the field is private to this module and its parent; the one other constructor, [`Redacted::empty_list`],
/// holds no text), so a function
/// that takes `&Redacted` cannot be handed raw text: the type is the proof
/// that redaction ran. Concatenating pieces means formatting plain text and
/// redacting the whole again, so no secret can straddle a seam.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(transparent)]
pub struct Redacted(pub(super) String);

impl Redacted {
    /// The empty JSON list `[]` (a message with no files): it holds no text,
    /// so there is nothing to redact, and building a whole [`Redactor`] for
    /// it (every rule compiled) would cost more than the insert it serves.
    pub fn empty_list() -> Self {
        Redacted("[]".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl std::fmt::Display for Redacted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl rusqlite::ToSql for Redacted {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        self.0.to_sql()
    }
}
