//! The built-in secret catalogue, as data: one entry per rule with its id, family (for the
//! per-family recall table), placeholder, prefilter keywords, regex, minimum Shannon entropy of
//! the secret and behaviour flags. [`crate::redact`] compiles it; the order is the order rules run
//! (specific shapes before generic assignments; see the module docs there).
//!
//! Every shape below is written from the provider's own documentation of its token format
//! (prefix, length, alphabet), not from sample keys. Where a provider documents no shape (a bare
//! 32-hex key), the rule needs the provider's name within a short distance before the value
//! ([`ctx!`]), as gitleaks does.
//!
//! Keywords are the Aho-Corasick prefilter (matched ASCII-case-insensitively): a rule's regex
//! runs only on text that holds one of its keywords, so every match of the regex must contain one
//! of them (the `keywords_are_sound` test checks this on the corpus). A few rules use a keyword as
//! a document-level gate instead (Kubernetes `Secret` manifests).

/// Skip values that are plainly code (`password: String`, `token = get_token()`).
pub(crate) const SKIP_CODE: u8 = 1;
/// Skip documentation placeholders (`EXAMPLE`, `xxxx`, `<your-key>`, `${VAR}`, `changeme`).
pub(crate) const PLACEHOLDERS_PASS: u8 = 2;
/// A bare value continues across `;` when what follows is one more value-like run
/// (`password=abc;def` loses `abc;def`, while `Password=abc;User Id=u` keeps `User Id=u`).
pub(crate) const SEMICOLON: u8 = 4;
/// The keyword gates the whole document, not the match (`kind: Secret` above the data lines,
/// "Discord" anywhere near a bot token): a stream keeps the rule on once it has seen it.
pub(crate) const DOCUMENT_GATE: u8 = 8;

/// Metadata that the 4-tuple [`RULES`] table does not carry, in the same order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Meta {
    pub family: &'static str,
    pub keywords: &'static [&'static str],
    /// Minimum Shannon entropy (bits per character) of the secret; 0 disables the gate.
    pub entropy: f64,
    pub flags: u8,
}

/// A `key = value` assignment whose value is the secret, keeping the key. Accepts `=`, `:`, `:=`,
/// `==` and `=>`. A quoted value is taken whole (escaped quotes included); a bare one stops at
/// characters that end values in URLs and code. JSON inside a string (`\"password\":
/// \"hunter2\"`, as in code literals, escaped logs and Rust's `{:?}`) has its key's and value's
/// quotes escaped, once or more: they count as quotes. There is no left word boundary on
/// purpose, so `DB_PASSWORD=` and `access_token=` count too.
macro_rules! assignment {
    ($keys:literal) => {
        concat!(
            r#"(?i)(?:"#, $keys, r#")(?:\\*["'])?[ \t]*(?::=|==|=>|[=:])[ \t]*"#,
            r#"(?:"(?P<secret_dq>(?:[^"\\\r\n]|\\.)+)"|\\+"(?P<secret_edq>(?:[^"\\\r\n]|\\[^"\\\r\n])+)\\+"|'(?P<secret_sq>[^'\r\n]+)'|["']?(?P<secret>[^\s"'`,;&<>(){}\[\]]+))"#
        )
    };
}

/// A value of shape `$secret` shortly after the provider's name `$name` (any case): within 60
/// characters on the same line or one of the next two (a YAML/TOML section):
/// `DATADOG_API_KEY=…`, `"datadog": {"api_key": "…"}`, "my Datadog key is …", `datadog:⏎  apiKey: …`.
macro_rules! ctx {
    ($name:literal, $secret:literal) => {
        concat!(
            r"(?i:",
            $name,
            r")[^\n]{0,60}?(?:\n[^\n]{0,60}?){0,2}?(?-u:\b)(?P<secret>",
            $secret,
            r")(?-u:\b)"
        )
    };
}

macro_rules! catalogue {
    ($( ($id:literal, $family:literal, $ph:literal, [$($kw:literal),* $(,)?], $re:expr, $entropy:literal, $flags:expr) ),* $(,)?) => {
        /// (name, regex, placeholder, skip values that are plainly code), in the order rules run.
        pub(crate) const RULES: &[(&str, &str, &str, bool)] = &[
            $( ($id, $re, $ph, ($flags) & SKIP_CODE != 0) ),*
        ];
        /// Per rule of [`RULES`], same index.
        pub(crate) const META: &[Meta] = &[
            $( Meta { family: $family, keywords: &[$($kw),*], entropy: $entropy, flags: $flags } ),*
        ];
    };
}

const PW: u8 = SKIP_CODE | PLACEHOLDERS_PASS;

#[rustfmt::skip]
catalogue![
    // First, so no later rule nibbles at the base64 body. Any armour label (RSA, EC, DSA, OPENSSH,
    // ENCRYPTED, PGP … BLOCK, SSH2 ENCRYPTED), on one line, across lines or JSON-escaped (`\n`).
    // An unterminated block is redacted to the end of the text: a truncated key is still a key.
    ("private-key", "private-keys", "PRIVATE_KEY_REDACTED", ["private key"],
     r"(?s)-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----|\z)", 0.0, 0),
    // PuTTY .ppk v2/v3: the private lines run up to the MAC.
    ("putty-private-key", "private-keys", "PRIVATE_KEY_REDACTED", ["putty-user-key-file-"],
     r"(?s)PuTTY-User-Key-File-[23]:.*?(?:Private-MAC:[ \t]*[0-9a-fA-F]+|\z)", 0.0, 0),
    // age: Bech32 (upper case) `AGE-SECRET-KEY-1` + 58 data characters.
    ("age-secret-key", "private-keys", "PRIVATE_KEY_REDACTED", ["age-secret-key-1"],
     r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}", 0.0, 0),
    // AWS key IDs: 4-letter type prefix + 16 base32 characters (AKIA long-term, ASIA STS).
    ("aws-access-key", "cloud", "AWS_KEY_REDACTED", ["akia", "asia", "abia", "acca"],
     r"(?-u:\b)(?:AKIA|ASIA|ABIA|ACCA)[A-Z0-9]{16}(?-u:\b)", 0.0, 0),
    ("aws-secret-key", "cloud", "AWS_SECRET_REDACTED", ["aws"],
     r#"(?i)aws_?secret_?(?:access_?)?key(?:_?id)?["']?[ \t]*[=:][ \t]*["']?(?P<secret>[A-Za-z0-9/+]{40})(?:[^A-Za-z0-9/+]|\z)"#, 0.0, 0),
    // STS session tokens are long base64 whose first bytes are fixed (`FwoGZXIvYXdz…`,
    // `IQoJb3JpZ2luX2Vj…`), or any value assigned to `aws_session_token`.
    ("aws-session-token", "cloud", "AWS_SESSION_TOKEN_REDACTED", ["aws", "fwogzxivyxdz", "iqojb3jpz2lux2vj"],
     r#"(?i:aws_?session_?token|x-amz-security-token)["']?[ \t]*[=:][ \t]*["']?(?P<secret>[A-Za-z0-9/+=]{40,})|(?-u:\b)(?:FwoGZXIvYXdz|IQoJb3JpZ2luX2Vj)[A-Za-z0-9/+=]{80,}"#, 0.0, 0),
    ("github-token", "code-hosting", "GITHUB_TOKEN_REDACTED", ["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
     r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{22,})", 0.0, 0),
    // Before openai-key, which would otherwise claim every `sk-ant-` key.
    ("anthropic-key", "ai", "ANTHROPIC_KEY_REDACTED", ["sk-ant-"],
     r"(?-u:\b)sk-ant-[A-Za-z0-9_-]{20,}", 0.0, 0),
    // 32+ characters keeps kebab-case words like `sk-learn` out; real keys are 48 and up.
    ("openai-key", "ai", "OPENAI_KEY_REDACTED", ["sk-"],
     r"(?-u:\b)sk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{32,}", 0.0, 0),
    ("slack-token", "messaging", "SLACK_TOKEN_REDACTED", ["xox", "xapp-"],
     r"(?-u:\b)(?:xox[abposre](?:\.xox[bp])?|xapp)-[A-Za-z0-9-]{10,}", 0.0, 0),
    ("stripe-key", "payments", "STRIPE_KEY_REDACTED", ["sk_live_", "sk_test_", "rk_live_", "rk_test_"],
     r"(?-u:\b)(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}", 0.0, 0),
    ("google-api-key", "ai", "GOOGLE_API_KEY_REDACTED", ["aiza"],
     r"(?-u:\b)AIza[A-Za-z0-9_-]{35}", 0.0, 0),

    // ---- AI providers
    ("xai-key", "ai", "XAI_KEY_REDACTED", ["xai-"], r"(?-u:\b)xai-[A-Za-z0-9]{70,90}(?-u:\b)", 0.0, 0),
    ("groq-key", "ai", "GROQ_KEY_REDACTED", ["gsk_"], r"(?-u:\b)gsk_[A-Za-z0-9]{52}(?-u:\b)", 0.0, 0),
    ("huggingface-token", "ai", "HUGGINGFACE_TOKEN_REDACTED", ["hf_", "api_org_"],
     r"(?-u:\b)(?:hf_[A-Za-z]{34}|api_org_[A-Za-z]{34})(?-u:\b)", 0.0, 0),
    ("replicate-token", "ai", "REPLICATE_TOKEN_REDACTED", ["r8_"], r"(?-u:\b)r8_[A-Za-z0-9]{37}(?-u:\b)", 0.0, 0),
    ("perplexity-key", "ai", "PERPLEXITY_KEY_REDACTED", ["pplx-"], r"(?-u:\b)pplx-[A-Za-z0-9]{48}(?-u:\b)", 0.0, 0),
    ("cohere-key", "ai", "COHERE_KEY_REDACTED", ["cohere", "co_api_key"], ctx!("cohere|co_api_key", "[A-Za-z0-9]{40}"), 3.0, 0),
    ("mistral-key", "ai", "MISTRAL_KEY_REDACTED", ["mistral"], ctx!("mistral", "[A-Za-z0-9]{32}"), 3.0, 0),
    ("google-oauth", "cloud", "GOOGLE_OAUTH_REDACTED", ["gocspx-", "ya29.", "1//0"],
     r"(?-u:\b)(?:GOCSPX-[A-Za-z0-9_-]{28}|ya29\.[0-9A-Za-z_-]{30,}|1//0[0-9A-Za-z_-]{40,})", 0.0, 0),
    ("gcp-private-key-id", "cloud", "GCP_KEY_ID_REDACTED", ["private_key_id"],
     r#""private_key_id"[ \t]*:[ \t]*"(?P<secret>[0-9a-f]{40})""#, 0.0, 0),

    // ---- Cloud
    // Azure storage / Service Bus / Event Hubs connection strings: the account or SAS key is
    // base64 (storage 88 characters, SAS keys 44).
    ("azure-connection-string", "cloud", "AZURE_KEY_REDACTED", ["accountkey=", "sharedaccesskey="],
     r"(?i)(?:AccountKey|SharedAccessKey)=(?P<secret>[A-Za-z0-9+/]{40,}={0,2})", 0.0, 0),
    // SAS URLs: `sig=` is the HMAC-SHA256 signature, base64 and percent-encoded.
    ("azure-sas", "cloud", "AZURE_SAS_REDACTED", ["sig="],
     r"(?i)[?&]sig=(?P<secret>[A-Za-z0-9%+/]{40,}(?:%3D|=){0,2})", 0.0, 0),
    // Entra ID (Azure AD) client secrets: 3 characters, a digit, `Q~`, then 31–34.
    ("azure-client-secret", "cloud", "AZURE_CLIENT_SECRET_REDACTED", ["q~"],
     r"(?:^|[^A-Za-z0-9_~.-])(?P<secret>[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.-]{31,34})", 0.0, 0),
    ("alibaba-key", "cloud", "ALIBABA_KEY_REDACTED", ["ltai", "alibaba", "aliyun"],
     r"(?-u:\b)LTAI[A-Za-z0-9]{12,20}(?-u:\b)|(?i:alibaba|aliyun)[^\n]{0,40}?(?i:secret)[^\n]{0,20}?(?-u:\b)(?P<secret>[A-Za-z0-9]{30})(?-u:\b)", 0.0, 0),
    ("digitalocean-token", "cloud", "DIGITALOCEAN_TOKEN_REDACTED", ["dop_v1_", "doo_v1_", "dor_v1_"],
     r"(?-u:\b)do[opr]_v1_[a-f0-9]{64}(?-u:\b)", 0.0, 0),
    ("fly-token", "cloud", "FLY_TOKEN_REDACTED", ["fo1_", "fm1a_", "fm1r_", "fm2_"],
     r"(?-u:\b)(?:fo1_[A-Za-z0-9_-]{43}|(?:fm1[ar]|fm2)_[A-Za-z0-9+/=_-]{60,})", 0.0, 0),
    ("vercel-token", "cloud", "VERCEL_TOKEN_REDACTED", ["vercel", "vcp_", "vci_", "vca_", "vcr_", "vck_"],
     r"(?-u:\b)vc[pcikar]_[A-Za-z0-9]{24,}(?-u:\b)|(?i:vercel)[^\n]{0,60}?(?:\n[^\n]{0,60}?){0,2}?(?-u:\b)(?P<secret>[A-Za-z0-9]{24})(?-u:\b)", 3.0, 0),
    ("heroku-key", "cloud", "HEROKU_KEY_REDACTED", ["heroku", "hrku-"],
     r"(?-u:\b)HRKU-[A-Za-z0-9_-]{20,}|(?i:heroku)[^\n]{0,60}?(?:\n[^\n]{0,60}?){0,2}?(?-u:\b)(?P<secret>[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})(?-u:\b)", 0.0, 0),
    // API tokens are 40 characters, the legacy global key 37 hex, origin CA keys `v1.0-…`.
    ("cloudflare-token", "cloud", "CLOUDFLARE_TOKEN_REDACTED", ["cloudflare", "cf_api", "v1.0-"],
     r"(?i:cloudflare|cf_api)[^\n]{0,60}?(?:\n[^\n]{0,60}?){0,2}?(?-u:\b)(?P<secret>[A-Za-z0-9_-]{40}|[0-9a-f]{37})(?-u:\b)|(?-u:\b)v1\.0-[0-9a-f]{24}-[0-9a-f]{146}", 3.0, 0),

    // ---- Code hosting and CI
    ("gitlab-token", "code-hosting", "GITLAB_TOKEN_REDACTED",
     ["glpat-", "glrt-", "glrtr-", "gldt-", "glft-", "glcbt-", "gloas-", "glimt-", "glptt-", "glsoat-", "glffct-", "glagent-", "glwt-", "gr1348941"],
     r"(?-u:\b)(?:(?:glpat|glrt|glrtr|gldt|glft|glcbt|gloas|glimt|glptt|glsoat|glffct|glagent|glwt)-[A-Za-z0-9_.-]{20,}|GR1348941[A-Za-z0-9_-]{20,})", 0.0, 0),
    ("atlassian-token", "code-hosting", "ATLASSIAN_TOKEN_REDACTED", ["atbb", "atatt", "atctt"],
     r"(?-u:\b)(?:ATBB[A-Za-z0-9_=.-]{32,}|AT(?:ATT|CTT)3xFfGF0[A-Za-z0-9_=-]{100,})", 0.0, 0),
    ("circleci-token", "code-hosting", "CIRCLECI_TOKEN_REDACTED", ["ccipat_", "cciprj_", "circle"],
     r"(?-u:\b)CCI(?:PAT|PRJ)_[A-Za-z0-9]{22}_[a-f0-9]{40}(?-u:\b)|(?i:circle)[^\n]{0,60}?(?:\n[^\n]{0,60}?){0,2}?(?-u:\b)(?P<secret>[0-9a-f]{40})(?-u:\b)", 0.0, 0),
    ("buildkite-token", "code-hosting", "BUILDKITE_TOKEN_REDACTED", ["bkua_", "buildkite"],
     r"(?-u:\b)bkua_[a-f0-9]{40}(?-u:\b)|(?i:buildkite)[^\n]{0,60}?(?:\n[^\n]{0,60}?){0,2}?(?-u:\b)(?P<secret>[a-z0-9]{50})(?-u:\b)", 0.0, 0),

    // ---- Messaging
    ("slack-webhook", "messaging", "SLACK_WEBHOOK_REDACTED", ["hooks.slack.com"],
     r"hooks\.slack\.com/(?:services|workflows|triggers)/(?P<secret>[A-Za-z0-9/_+-]{20,})", 0.0, 0),
    // Bot tokens (base64 of the bot's id, a timestamp, an HMAC) run only on text that names
    // Discord somewhere.
    ("discord-token", "messaging", "DISCORD_TOKEN_REDACTED", ["discord"],
     r"(?i:discord(?:app)?\.com/api/webhooks/)[0-9]{17,20}/(?P<secret_hook>[A-Za-z0-9_-]{60,})|(?-u:\b)[MNO][A-Za-z0-9_-]{23,27}\.[A-Za-z0-9_-]{6}\.[A-Za-z0-9_-]{27,40}(?-u:\b)", 0.0, DOCUMENT_GATE),
    // `<bot id>:AA` + 33 characters.
    ("telegram-bot-token", "messaging", "TELEGRAM_TOKEN_REDACTED", [":aa"],
     r"(?-u:\b)[0-9]{8,10}:AA[A-Za-z0-9_-]{33}(?-u:\b)", 0.0, 0),
    ("twilio-key", "messaging", "TWILIO_KEY_REDACTED", ["sk", "twilio"],
     r"(?-u:\b)SK[0-9a-f]{32}(?-u:\b)|(?i:twilio)[^\n]{0,60}?(?:\n[^\n]{0,60}?){0,2}?(?-u:\b)(?P<secret>[0-9a-f]{32})(?-u:\b)", 0.0, 0),
    ("sendgrid-key", "messaging", "SENDGRID_KEY_REDACTED", ["sg."],
     r"(?-u:\b)SG\.[A-Za-z0-9_-]{22}\.[A-Za-z0-9_-]{43}(?-u:\b)", 0.0, 0),
    ("mailgun-key", "messaging", "MAILGUN_KEY_REDACTED", ["key-", "mailgun"],
     r"(?-u:\b)key-[0-9a-f]{32}(?-u:\b)|(?i:mailgun)[^\n]{0,60}?(?:\n[^\n]{0,60}?){0,2}?(?-u:\b)(?P<secret>[0-9a-f]{32}-[0-9a-f]{8}-[0-9a-f]{8})(?-u:\b)", 0.0, 0),
    // Marketing API keys end with the data centre: `-us21`.
    ("mailchimp-key", "messaging", "MAILCHIMP_KEY_REDACTED", ["-us"],
     r"(?-u:\b)[0-9a-f]{32}-us[0-9]{1,2}(?-u:\b)", 0.0, 0),
    ("postmark-token", "messaging", "POSTMARK_TOKEN_REDACTED", ["postmark"],
     ctx!("postmark", "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"), 0.0, 0),

    // ---- Payments and commerce
    ("stripe-webhook-secret", "payments", "STRIPE_KEY_REDACTED", ["whsec_"],
     r"(?-u:\b)whsec_[A-Za-z0-9+/=]{32,}", 0.0, 0),
    ("square-token", "payments", "SQUARE_TOKEN_REDACTED", ["eaaa", "sq0atp-", "sq0csp-"],
     r"(?-u:\b)(?:EAAA[A-Za-z0-9_-]{60}|sq0atp-[A-Za-z0-9_-]{22}|sq0csp-[A-Za-z0-9_-]{43})(?-u:\b)", 0.0, 0),
    ("braintree-token", "payments", "BRAINTREE_TOKEN_REDACTED", ["access_token$"],
     r"access_token\$(?:production|sandbox)\$[0-9a-z]{16}\$[0-9a-f]{32}", 0.0, 0),
    ("paypal-secret", "payments", "PAYPAL_SECRET_REDACTED", ["paypal"],
     ctx!("paypal", "[A-Za-z0-9_-]{80}"), 3.5, 0),
    ("shopify-token", "payments", "SHOPIFY_TOKEN_REDACTED", ["shpat_", "shpca_", "shppa_", "shpss_"],
     r"(?-u:\b)shp(?:at|ca|pa|ss)_[a-fA-F0-9]{32}(?-u:\b)", 0.0, 0),

    // ---- Package registries
    // .npmrc `//registry/:_authToken=…`, `_auth=` (base64 user:pass) and `_password=`, at the
    // start of a line or after the registry's `:`.
    ("npmrc-auth", "config", "NPM_TOKEN_REDACTED", ["_auth", "_password"],
     r#"(?im)(?:^|:)[ \t]*(?:_authToken|_auth|_password)[ \t]*=[ \t]*["']?(?P<secret>[^\s"']+)"#, 0.0, PLACEHOLDERS_PASS),
    ("npm-token", "registries", "NPM_TOKEN_REDACTED", ["npm_"], r"(?-u:\b)npm_[A-Za-z0-9]{36}(?-u:\b)", 0.0, 0),
    // Macaroons whose first bytes encode `pypi.org` (or `test.pypi.org`).
    ("pypi-token", "registries", "PYPI_TOKEN_REDACTED", ["pypi-age"], r"(?-u:\b)pypi-AgE[A-Za-z0-9_-]{50,}", 0.0, 0),
    ("rubygems-key", "registries", "RUBYGEMS_KEY_REDACTED", ["rubygems_"], r"(?-u:\b)rubygems_[a-f0-9]{48}(?-u:\b)", 0.0, 0),
    ("crates-io-token", "registries", "CRATES_IO_TOKEN_REDACTED", ["cio"], r"(?-u:\b)cio[A-Za-z0-9]{32}(?-u:\b)", 0.0, 0),
    ("nuget-key", "registries", "NUGET_KEY_REDACTED", ["oy2"], r"(?-u:\b)oy2[a-z0-9]{43}(?-u:\b)", 0.0, 0),
    ("docker-hub-token", "registries", "DOCKER_TOKEN_REDACTED", ["dckr_pat_", "dckr_oat_"],
     r"(?-u:\b)dckr_(?:pat|oat)_[A-Za-z0-9_-]{27,}", 0.0, 0),

    // ---- Observability
    ("datadog-key", "observability", "DATADOG_KEY_REDACTED", ["datadog", "dd_api", "dd_app", "dd-api", "dd-application"],
     ctx!("datadog|dd_api|dd_app|dd-api|dd-application", "[0-9a-f]{32}|[0-9a-f]{40}"), 0.0, 0),
    ("newrelic-key", "observability", "NEWRELIC_KEY_REDACTED", ["nrak-", "nrjs-", "nrii-", "nral"],
     r"(?-u:\b)(?:NRAK-[A-Z0-9]{27}|NRJS-[a-f0-9]{19}|NRII-[A-Za-z0-9_-]{32}|[a-f0-9]{36}NRAL)(?-u:\b)", 0.0, 0),
    ("sentry-token", "observability", "SENTRY_TOKEN_REDACTED", ["sntryu_", "sntrys_", "sentry"],
     r"(?-u:\b)(?:sntryu_[a-f0-9]{64}|sntrys_eyJ[A-Za-z0-9+/=_]{60,})|https?://(?P<secret>[a-f0-9]{32})(?::[a-f0-9]{32})?@[A-Za-z0-9.-]*sentry", 0.0, 0),
    ("grafana-token", "observability", "GRAFANA_TOKEN_REDACTED", ["glc_", "glsa_", "eyjrijoi"],
     r"(?-u:\b)(?:glc_[A-Za-z0-9+/]{32,}={0,2}|glsa_[A-Za-z0-9]{32}_[a-fA-F0-9]{8}|eyJrIjoi[A-Za-z0-9+/]{60,}={0,2})", 0.0, 0),

    // ---- Secret managers
    ("vault-token", "secret-managers", "VAULT_TOKEN_REDACTED", ["hvs.", "hvb.", "hvr.", "vault"],
     r"(?-u:\b)hv[sbr]\.[A-Za-z0-9_-]{24,}|(?i:vault)[^\n]{0,60}?(?:\n[^\n]{0,60}?){0,2}?(?-u:\b)(?P<secret>s\.[A-Za-z0-9]{24})(?-u:\b)", 0.0, 0),
    ("doppler-token", "secret-managers", "DOPPLER_TOKEN_REDACTED", ["dp."],
     r"(?-u:\b)dp\.(?:pt|st|sa|ct|scim|audit)\.(?:[a-z0-9_-]{1,40}\.)?[A-Za-z0-9]{40,44}(?-u:\b)", 0.0, 0),
    ("onepassword-token", "secret-managers", "ONEPASSWORD_TOKEN_REDACTED", ["ops_eyj", "a3-"],
     r"(?-u:\b)(?:ops_eyJ[A-Za-z0-9+/=_-]{100,}|A3-[A-Z0-9]{6}-[A-Z0-9]{6}-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5})", 0.0, 0),
    ("infisical-token", "secret-managers", "INFISICAL_TOKEN_REDACTED", ["st."],
     r"(?-u:\b)st\.[a-f0-9-]{36}\.[a-f0-9]{32}\.[a-f0-9]{32}(?-u:\b)", 0.0, 0),

    // ---- Databases
    // Oracle thin JDBC: `jdbc:oracle:thin:user/password@host`.
    ("jdbc-oracle-password", "databases", "URL_PASSWORD_REDACTED", ["jdbc:oracle"],
     r"jdbc:oracle:[a-z]+:[^/\s:@]+/(?P<secret>[^@\s]+)@", 0.0, 0),

    // ---- Config idioms
    // Docker config.json `auths`: base64 of user:password.
    ("docker-config-auth", "config", "DOCKER_AUTH_REDACTED", ["\"auth\""],
     r#""auth"[ \t]*:[ \t]*"(?P<secret>[A-Za-z0-9+/]{8,}={0,2})""#, 0.0, 0),
    // kubeconfig client keys (base64 PEM) and tokens.
    ("kubeconfig-credential", "config", "KUBE_CREDENTIAL_REDACTED", ["client-key-data", "id-token", "refresh-token"],
     r#"(?i)(?:client-key-data|id-token|refresh-token)["']?[ \t]*:[ \t]*["']?(?P<secret>[A-Za-z0-9+/=._-]{20,})"#, 0.0, 0),
    // Every `key: base64` entry of a Kubernetes Secret's data, when the text holds a Secret.
    ("k8s-secret-data", "config", "K8S_SECRET_REDACTED", ["kind: secret", "kind: \"secret\"", "\"kind\": \"secret\"", "kind:secret"],
     r#"(?m)^[ \t]+["']?[A-Za-z0-9._-]+["']?[ \t]*:[ \t]*["']?(?P<secret>[A-Za-z0-9+/]{8,}={0,2})["']?,?[ \t]*\r?$"#, 3.0, SKIP_CODE | DOCUMENT_GATE),
    // .netrc: `machine host login user password secret`, on one line or several.
    ("netrc-password", "config", "PASSWORD_REDACTED", ["login"],
     r"(?-u:\b)login[ \t\r\n]+[^\s]+[ \t\r\n]+password[ \t]+(?P<secret>[^\s]+)", 0.0, PLACEHOLDERS_PASS),
    // Terraform `variable "db_password" { default = "…" }`.
    ("terraform-variable", "config", "SECRET_REDACTED", ["variable"],
     r#"(?i)variable[ \t]+"[^"\n]*(?:password|secret|token|key)[^"\n]*"[ \t]*\{[^}]{0,200}?default[ \t]*=[ \t]*"(?P<secret>[^"\n]+)""#, 0.0, PLACEHOLDERS_PASS),

    // ---- Command lines
    // `mysql -uroot -pSecret`, `mysqldump -p'x y'`.
    ("mysql-cli-password", "command-lines", "PASSWORD_REDACTED", ["mysql", "mariadb"],
     r#"(?-u:\b)(?:mysql[a-z]*|mariadb[a-z-]*)(?-u:\b)[^\n|;&]*?[ \t]-p(?:'(?P<secret_sq>[^'\n]+)'|"(?P<secret_dq>[^"\n]+)"|(?P<secret>[^\s'"]+))"#, 0.0, PLACEHOLDERS_PASS),
    ("sshpass-password", "command-lines", "PASSWORD_REDACTED", ["sshpass"],
     r#"(?-u:\b)sshpass[ \t]+(?:-[a-oq-zA-Z][^\s]*[ \t]+)*-p[ \t]*(?:'(?P<secret_sq>[^'\n]+)'|"(?P<secret_dq>[^"\n]+)"|(?P<secret>[^\s'"]+))"#, 0.0, PLACEHOLDERS_PASS),
    // curl/wget/httpie `-u user:password`, `--user user:password`.
    ("cli-user-password", "command-lines", "PASSWORD_REDACTED", ["curl", "wget", "http "],
     r#"(?-u:\b)(?:curl|wget|http)(?-u:\b)[^\n|;&]*?[ \t](?:-u|--user|--http-user|-a|--auth)[ \t=]*['"]?[^\s:'"]+:(?P<secret>[^\s'"]+)"#, 0.0, PLACEHOLDERS_PASS),
    // `--password X`, `--token X`, `-password X` (space-separated; `--password=X` is an assignment).
    ("cli-secret-flag", "command-lines", "PASSWORD_REDACTED", ["-pass", "--token", "--api-key", "--secret", "--client-secret", "-passwd"],
     r#"(?i)(?:^|[ \t])--?(?:password|passwd|pass|token|api-key|apikey|secret|client-secret|auth-token|access-token)[ \t]+(?:'(?P<secret_sq>[^'\n]+)'|"(?P<secret_dq>[^"\n]+)"|(?P<secret>[^\s'"-][^\s'"]*))"#, 0.0, PW),

    ("jwt", "tokens", "JWT_REDACTED", ["eyj"],
     r"(?-u:\b)eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]*", 0.0, 0),
    // The password runs to the last `@` before the path, so an unencoded `@` in it does not leak
    // the rest. The user part may be empty (`redis://:pw@host`).
    ("url-password", "databases", "URL_PASSWORD_REDACTED", ["://"],
     r#"(?-u:\b)[A-Za-z][A-Za-z0-9+._-]*://[^\s:/?#@"'<>]*:(?P<secret>[^\s/?#"'<>]+)@"#, 0.0, 0),
    // Before bearer-token: the whole credential goes, whatever its scheme.
    ("authorization-header", "command-lines", "AUTHORIZATION_REDACTED", ["authorization"],
     r#"(?i)(?-u:\b)authorization["']?[ \t]*:[ \t]*["']?(?P<secret>[^\s"'][^"'\r\n]*)"#, 0.0, 0),
    ("bearer-token", "command-lines", "BEARER_TOKEN_REDACTED", ["bearer"],
     r"(?i)(?-u:\b)bearer[ \t]+(?P<secret>[A-Za-z0-9._~+/=-]{8,})", 0.0, 0),
    // Last: anything more specific inside the value has already been claimed above.
    ("password-assignment", "generic", "PASSWORD_REDACTED", ["password", "passwd", "passphrase", "pwd"],
     assignment!("password|passwd|passphrase|pwd"), 0.0, PW | SEMICOLON),
    ("secret-assignment", "generic", "SECRET_REDACTED", ["key", "secret", "token"],
     assignment!("(?:secret[_-]?access|secret|private|api)[_-]?key|secret|token"), 0.0, PW),
    // Any other `*_KEY` / `*-key` / `*KEY` name with a long random-looking value. Names alone say
    // little (`sort_key`, `primary_key`), so the value must be 16+ characters and carry entropy.
    ("generic-key-assignment", "generic", "SECRET_REDACTED", ["key", "credential"],
     r#"(?i)[A-Za-z0-9](?:[_-]?key|[_-]credentials?)["']?[ \t]*(?::=|=>|[=:])[ \t]*["']?(?P<secret>[A-Za-z0-9/+=._~-]{16,})"#, 3.5, PW),
];

/// Documentation placeholders that are not secrets: `EXAMPLE`, `xxxx`, `****`, `<your-key>`,
/// `${VAR}`, `$VAR`, `%VAR%`, `{{ var }}`, `changeme`, `your_api_key_here`. Applied only to
/// rules flagged [`PLACEHOLDERS_PASS`] (the generic assignments and config/command-line idioms):
/// a value with a provider's exact shape is redacted even if it spells EXAMPLE, since the
/// provider's own sample keys are what people paste into tests and mistakes alike.
pub(crate) fn is_placeholder(value: &str) -> bool {
    let v = value.trim_matches(|c: char| c == '"' || c == '\'');
    let lower = v.to_ascii_lowercase();
    const WORDS: &[&str] = &[
        "changeme",
        "change_me",
        "change-me",
        "changeit",
        "placeholder",
        "redacted",
        "dummy",
        "notasecret",
        "not-a-secret",
        "secret",
        "password",
        "xxx",
        "todo",
        "fixme",
        "...",
        "replaceme",
        "replace_me",
        "replace-me",
        "yourpassword",
        "mypassword",
        "none",
        "empty",
        // Prose after `Password:` / `Token:` rather than a value.
        "see",
        "expired",
        "required",
        "optional",
        "hidden",
        "unknown",
        "same",
        "below",
        "above",
        "provided",
        "unset",
        "missing",
        "invalid",
        "n/a",
        "tbd",
        "ask",
        "sent",
        "attached",
    ];
    if WORDS.contains(&lower.as_str()) || lower.contains("example") {
        return true;
    }
    if lower.starts_with("your") || lower.starts_with("<") || lower.starts_with("{{") {
        return true;
    }
    // Template and environment references.
    if v.starts_with("${") || v.starts_with("$(") || v.starts_with("%") && v.ends_with('%') {
        return true;
    }
    if v.strip_prefix('$').is_some_and(|name| {
        !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    }) {
        return true;
    }
    // Masks: only x, *, ., -, _ or one repeated character, at least 3 long.
    let first = v.chars().next().unwrap_or(' ');
    v.len() >= 3
        && (v
            .chars()
            .all(|c| matches!(c, 'x' | 'X' | '*' | '.' | '-' | '_' | '•'))
            || v.chars().all(|c| c == first))
}

/// A value masked in documentation (`sk_test_xxxxxxxxxxxxxxxx`, `ghp_****…`): eight or more `x`,
/// `X` or `*` in a row, which a random token all but never holds. Applies to every rule.
pub(crate) fn is_masked(s: &str) -> bool {
    let mut run = 0;
    let mut prev = 0u8;
    for b in s.bytes() {
        run = if matches!(b, b'x' | b'X' | b'*') && (run == 0 || b == prev) {
            run + 1
        } else if matches!(b, b'x' | b'X' | b'*') {
            1
        } else {
            0
        };
        prev = b;
        if run >= 8 {
            return true;
        }
    }
    false
}

/// Shannon entropy of `s` in bits per character (by byte; secrets are ASCII).
pub(crate) fn shannon_entropy(s: &str) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// For the `;` continuation ([`SEMICOLON`]): the byte length of the `;more` runs that extend a
/// bare value ending at the start of `after`. A run continues the value when it is made of
/// value characters only and ends the value (end of text, whitespace, quote or another `;`);
/// `;Key=value` and `; next` start something else.
pub(crate) fn semicolon_tail(after: &str) -> usize {
    let mut len = 0;
    let mut rest = after;
    while let Some(r) = rest.strip_prefix(';') {
        let run = r
            .find(|c: char| !(c.is_ascii_alphanumeric() || "!#$%*+-.^_|~?".contains(c)))
            .unwrap_or(r.len());
        let ends = r[run..]
            .chars()
            .next()
            .is_none_or(|c| c.is_whitespace() || matches!(c, ';' | '"' | '\'' | '`'));
        // `;User Id=u` starts the next key of a connection string.
        let segment = &r[..r.find([';', '\n']).unwrap_or(r.len())];
        if run == 0 || !ends || segment.contains('=') {
            break;
        }
        len += 1 + run;
        rest = &r[run..];
    }
    len
}

/// One example of the positive redaction corpus: the rule it is for, a text holding the secret,
/// and the secret itself.
pub struct CorpusExample<'a> {
    pub rule: &'a str,
    pub text: String,
    pub secret: String,
}

/// The positive corpus (`tests/corpus/redaction/positives.tsv`, see its generator) expanded:
/// each line's secret in its own text, or, for a bare token, in a chat sentence, a code block,
/// a `.env` line and JSON. The unit tests and `bench_redact_corpus` both read it through this.
pub fn corpus_examples(tsv: &str) -> Vec<CorpusExample<'_>> {
    let mut out = Vec::new();
    for line in tsv.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let mut parts = line.splitn(3, '\t');
        let (Some(id), Some(secret)) = (parts.next(), parts.next()) else {
            panic!("corpus line without a secret: {line:?}");
        };
        let secret = secret.replace("~~", "");
        let texts = match parts.next() {
            Some(text) => vec![text.replace('⏎', "\n")],
            None => {
                let env = id.to_ascii_uppercase().replace('-', "_");
                vec![
                    "Here is the key you asked for: {S} - can you check why the deploy fails?"
                        .into(),
                    "```python\nclient = Client(\"{S}\")\nclient.ping()\n```".into(),
                    format!("{env}={{S}}"),
                    "{\"service\": \"deploy\", \"credential\": \"{S}\", \"retries\": 3}".into(),
                ]
            }
        };
        for text in texts {
            out.push(CorpusExample {
                rule: id,
                text: text.replace("{S}", &secret),
                secret: secret.clone(),
            });
        }
    }
    out
}

/// The checked-in positive corpus as (rule, text, secret).
#[cfg(test)]
pub(crate) fn corpus_positives() -> Vec<(&'static str, String, String)> {
    const CORPUS: &str = include_str!("../../tests/corpus/redaction/positives.tsv");
    corpus_examples(CORPUS)
        .into_iter()
        .map(|e| (e.rule, e.text, e.secret))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every corpus example loses its secret, and its own rule is among those that fired.
    /// (The recall and false-positive numbers come from `bench_redact_corpus`; this keeps them
    /// from regressing.)
    #[test]
    fn corpus_examples_are_caught_by_their_own_rule() {
        let r = crate::redact::Redactor::builtin();
        let mut failures = Vec::new();
        for (id, text, secret) in corpus_positives() {
            let (out, classes) = r.redact_report(&text);
            if out.contains(&secret) || !classes.iter().any(|c| c == id) {
                failures.push(format!("{id}: {classes:?} {out:?}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} missed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    /// At most 0.5 % of the benign corpus is touched at all.
    #[test]
    fn benign_corpus_stays_untouched() {
        const BENIGN: &str = include_str!("../../tests/corpus/redaction/benign.txt");
        let r = crate::redact::Redactor::builtin();
        let lines: Vec<&str> = BENIGN.lines().collect();
        let flagged: Vec<String> = lines
            .iter()
            .filter_map(|l| match r.redact_report(l) {
                (std::borrow::Cow::Owned(out), classes) => {
                    Some(format!("{classes:?} {l:?} -> {out:?}"))
                }
                _ => None,
            })
            .collect();
        assert!(lines.len() >= 2000);
        assert!(
            flagged.len() * 200 <= lines.len(),
            "{} of {} benign lines redacted:\n{}",
            flagged.len(),
            lines.len(),
            flagged.join("\n")
        );
    }

    #[test]
    fn every_rule_has_three_corpus_examples() {
        let corpus = corpus_positives();
        for (id, ..) in RULES {
            let n = corpus.iter().filter(|c| c.0 == *id).count();
            assert!(n >= 3, "{id} has {n} corpus examples, wants 3");
        }
    }

    #[test]
    fn tables_line_up_and_ids_are_unique() {
        assert_eq!(RULES.len(), META.len());
        let mut ids: Vec<&str> = RULES.iter().map(|r| r.0).collect();
        ids.sort_unstable();
        ids.dedup();
        assert_eq!(ids.len(), RULES.len(), "duplicate rule id");
        for (rule, meta) in RULES.iter().zip(META) {
            assert!(!meta.keywords.is_empty(), "{} has no keyword", rule.0);
            for k in meta.keywords {
                assert_eq!(
                    *k,
                    k.to_ascii_lowercase(),
                    "{}: keywords are lower case",
                    rule.0
                );
            }
        }
    }

    #[test]
    fn placeholders_and_entropy() {
        for p in [
            "EXAMPLE",
            "AKIAEXAMPLE",
            "xxxx",
            "********",
            "<your-key>",
            "${DB_PASSWORD}",
            "$TOKEN",
            "%API_KEY%",
            "{{ .Values.key }}",
            "changeme",
            "your_api_key_here",
            "...",
        ] {
            assert!(is_placeholder(p), "{p}");
        }
        for s in ["hunter2", "x", "s3cr3t", "Tr0ub4dor&3", "ab"] {
            assert!(!is_placeholder(s), "{s}");
        }
        assert!(shannon_entropy("aaaaaaaaaaaaaaaa") < 0.1);
        assert!(shannon_entropy("created_at_timestamp") < 3.5);
        assert!(shannon_entropy("q8Vx2LmN4pR7tZ1wK9yB3cD6") > 4.0);
    }

    #[test]
    fn semicolon_continuation() {
        assert_eq!(semicolon_tail(";def"), 4);
        assert_eq!(semicolon_tail(";def;ghi rest"), 8);
        assert_eq!(semicolon_tail(";User Id=u"), 0);
        assert_eq!(semicolon_tail("; echo hi"), 0);
        assert_eq!(semicolon_tail(";Port=5432"), 0);
        assert_eq!(semicolon_tail(";@"), 0);
        assert_eq!(semicolon_tail("&x=1"), 0);
    }
}
