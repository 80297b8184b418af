//! Operator rule files: the bridge's `[[pattern]]` TOML and gitleaks' format, told apart by
//! content and checked by compiling them.

use std::path::Path;

use serde::Deserialize;

use super::{PatternSpec, RedactError, Redactor};
use crate::redact_gitleaks::GitleaksRules;

/// Loads extra patterns from a TOML file of the form
/// ```toml
/// [[pattern]]
/// name = "internal-ticket-token"
/// regex = 'TKT-[0-9A-F]{16}'
/// placeholder = "TICKET_TOKEN_REDACTED"
/// ```
/// A capture group named `secret` limits what is replaced (`regex = 'pin=(?P<secret>\d+)'` keeps
/// `pin=`). Unknown keys are an error. Errors name the file and what to fix.
pub fn load_patterns_file(path: &Path) -> Result<Vec<PatternSpec>, RedactError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct PatternsFile {
        #[serde(default)]
        pattern: Vec<PatternSpec>,
    }
    let text = std::fs::read_to_string(path).map_err(|source| RedactError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let file: PatternsFile = toml::from_str(&text).map_err(|source| RedactError::ParseFile {
        path: path.to_owned(),
        source,
    })?;
    // Compile now so a bad pattern is reported with the file it came from.
    Redactor::with_extra(&file.pattern).map_err(|e| RedactError::InvalidFile {
        path: path.to_owned(),
        source: Box::new(e),
    })?;
    Ok(file.pattern)
}

/// An operator's extra rules: the bridge's `[[pattern]]` ones and gitleaks `[[rules]]`.
#[derive(Debug, Clone, Default)]
pub struct OperatorRules {
    pub patterns: Vec<PatternSpec>,
    pub gitleaks: GitleaksRules,
}

/// Loads an operator's rules file in either format, told apart by content: gitleaks' (top-level
/// `[[rules]]`, `[extend]`, `[allowlist]`/`[[allowlists]]` or `title`; see
/// [`crate::redact_gitleaks`]) or the bridge's `[[pattern]]` ([`load_patterns_file`]).
pub fn load_rules_file(path: &Path) -> Result<OperatorRules, RedactError> {
    let text = std::fs::read_to_string(path).map_err(|source| RedactError::ReadFile {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = toml::from_str(&text).map_err(|source| RedactError::ParseFile {
        path: path.to_owned(),
        source,
    })?;
    let rules = if crate::redact_gitleaks::looks_like_gitleaks(&table) {
        OperatorRules {
            patterns: Vec::new(),
            gitleaks: crate::redact_gitleaks::from_table(&table, path)?,
        }
    } else {
        OperatorRules {
            patterns: load_patterns_file(path)?,
            gitleaks: GitleaksRules::default(),
        }
    };
    Redactor::with_operator(&rules).map_err(|e| RedactError::InvalidFile {
        path: path.to_owned(),
        source: Box::new(e),
    })?;
    Ok(rules)
}
