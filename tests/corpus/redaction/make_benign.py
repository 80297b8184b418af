#!/usr/bin/env python3
"""Writes benign.txt: lines that look dangerous to a secret scanner but hold no secret.

Generated (fixed seed) from templates: source code that talks about passwords, tokens and keys;
lockfile lines (Cargo.lock, package-lock.json, yarn.lock, poetry.lock, go.sum); UUIDs, git SHAs,
SHA-256 sums and base64 image data; URLs without credentials; documentation placeholders; and
prose about passwords and tokens. One case per line; a redaction of any part of a line is a
false positive.

Run: python3 tests/corpus/redaction/make_benign.py > tests/corpus/redaction/benign.txt
"""
import base64
import hashlib
import random
import string

R = random.Random(4242)
HEX = "0123456789abcdef"
WORDS = ("user order invoice session cache request response config build deploy cluster node "
         "widget report metric event queue worker job batch record field form page route").split()
CRATES = ("serde tokio regex rand hyper axum clap anyhow thiserror bytes futures log tracing "
          "libc memchr itoa ryu smallvec once_cell parking_lot").split()
NPM = "react lodash express axios chalk debug ms semver uuid yargs commander webpack".split()


def hexs(n):
    return "".join(R.choice(HEX) for _ in range(n))


def w():
    return R.choice(WORDS)


def version():
    return f"{R.randint(0, 4)}.{R.randint(0, 40)}.{R.randint(0, 20)}"


def uuid():
    return f"{hexs(8)}-{hexs(4)}-4{hexs(3)}-a{hexs(3)}-{hexs(12)}"


def b64(n):
    return base64.b64encode(bytes(R.getrandbits(8) for _ in range(n))).decode()


CODE = [
    lambda: f"let {w()}_token_count = tokens.len();",
    lambda: f"fn validate_password(input: &str) -> bool {{ input.len() >= {R.randint(8, 16)} }}",
    lambda: f"    let cache_key = format!(\"{w()}:{{}}\", id);",
    lambda: f"const MAX_TOKENS: usize = {R.randint(100, 9000)};",
    lambda: f"def reset_password(self, user_id: int) -> None:",
    lambda: f"    password = request.form.get(\"password\")",
    lambda: f"    if not check_password_hash(user.password_hash, password):",
    lambda: f"token = self._next_token()",
    lambda: f"  \"max_tokens\": {R.randint(16, 8192)},",
    lambda: f"primary_key: true",
    lambda: f"sort_key = \"created_at\"",
    lambda: f"secret_name: \"{w()}-credentials\"",
    lambda: f"    api_key: Option<String>,",
    lambda: f"const {w().upper()}_KEY_PREFIX = \"{w()}:\";",
    lambda: f"export const tokenize = (s: string) => s.split(/\\s+/);",
    lambda: f"if (!req.headers.authorization) return res.status(401).end();",
    lambda: f"  private_key_path: ~/.ssh/id_ed25519",
    lambda: f"    key: {w()}.id,",
    lambda: f"for key, value in sorted(params.items()):",
    lambda: f"let {w()}_key = Key::from_slice(&bytes);",
    lambda: f"password_min_length = {R.randint(8, 20)}",
    lambda: f"SECRET_KEY = os.environ[\"SECRET_KEY\"]",
    lambda: f"api_key = os.getenv(\"{w().upper()}_API_KEY\")",
    lambda: f"token: ${{{{ secrets.GITHUB_TOKEN }}}}",
    lambda: f"DATABASE_URL=postgres://localhost:5432/{w()}_dev",
    lambda: f"    #[serde(skip_serializing)] password: String,",
    lambda: f"assert_eq!(hash_password(\"\"), Err(Error::Empty));",
    lambda: f"git commit -m \"auth: rotate the {w()} token on logout\"",
    lambda: f"docker login --username ci --password-stdin < /run/secrets/registry",
    lambda: f"curl -fsSL https://example.com/{w()}/install.sh | sh",
    lambda: f"mysql -u root -p {w()}_db < schema.sql",
    lambda: f"kubectl create secret generic {w()} --from-env-file=.env",
    lambda: f"  - name: {w().upper()}_TOKEN\n".rstrip(),
    lambda: f"ssh -i ~/.ssh/id_rsa deploy@{w()}.internal",
    lambda: f"let key_id = \"{w()}-{R.randint(1, 99)}\";",
    lambda: f"    \"keywords\": [\"{w()}\", \"{w()}\"],",
    lambda: f"<input type=\"password\" name=\"password\" autocomplete=\"current-password\">",
    lambda: f"session.set(\"csrf_token\", generate_csrf_token())",
    lambda: f"ENCRYPTION_KEY=${{ENCRYPTION_KEY}}",
    lambda: f"password: changeme",
    lambda: f"OPENAI_API_KEY=your-api-key-here",
    lambda: f"api_key: <your-key>",
    lambda: f"STRIPE_SECRET_KEY=sk_test_xxxxxxxxxxxxxxxxxxxxxxxx",
    lambda: f"GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    lambda: f"AWS_SECRET_ACCESS_KEY=<secret>",
    lambda: f"token = \"${{TOKEN}}\"",
    lambda: f"password = \"********\"",
    lambda: f"auth_token: %AUTH_TOKEN%",
    lambda: f"  secret: \"{{{{ .Values.{w()}.secret }}}}\"",
]

LOCK = [
    lambda: f"checksum = \"{hexs(64)}\"",
    lambda: f"name = \"{R.choice(CRATES)}\"",
    lambda: f"version = \"{version()}\"",
    lambda: f"source = \"registry+https://github.com/rust-lang/crates.io-index\"",
    lambda: f"      \"integrity\": \"sha512-{b64(64)}\",",
    lambda: f"      \"resolved\": \"https://registry.npmjs.org/{R.choice(NPM)}/-/{R.choice(NPM)}-{version()}.tgz\",",
    lambda: f"  resolved \"https://registry.yarnpkg.com/{R.choice(NPM)}/-/{R.choice(NPM)}-{version()}.tgz#{hexs(40)}\"",
    lambda: f"{{file = \"{R.choice(CRATES)}-{version()}.tar.gz\", hash = \"sha256:{hexs(64)}\"}},",
    lambda: f"github.com/{w()}/{w()} v{version()} h1:{b64(32)}",
    lambda: f"github.com/{w()}/{w()} v{version()}/go.mod h1:{b64(32)}",
]

IDS = [
    lambda: uuid(),
    lambda: f"request_id={uuid()}",
    lambda: f"commit {hexs(40)}",
    lambda: f"Merge: {hexs(7)} {hexs(7)}",
    lambda: f"{hexs(64)}  {w()}-{version()}-x86_64.tar.gz",
    lambda: f"sha256:{hexs(64)}",
    lambda: f"\"etag\": \"W/\\\"{hexs(32)}\\\"\"",
    lambda: f"data:image/png;base64,{b64(R.randint(60, 200))}",
    lambda: f"<img src=\"data:image/gif;base64,{b64(90)}\">",
    lambda: f"  \"id\": \"{uuid()}\", \"sha\": \"{hexs(40)}\"",
    lambda: f"trace_id={hexs(32)} span_id={hexs(16)}",
    lambda: f"image: ghcr.io/{w()}/{w()}@sha256:{hexs(64)}",
    lambda: f"{b64(48)}",
    lambda: f"{hashlib.sha1(str(R.random()).encode()).hexdigest()}",
]

URLS = [
    lambda: f"https://{w()}.example.com/{w()}/{w()}?page={R.randint(1, 50)}&sort=desc",
    lambda: f"https://github.com/{w()}/{w()}/pull/{R.randint(1, 9999)}",
    lambda: f"git@github.com:{w()}/{w()}.git",
    lambda: f"ssh://git@gitlab.com/{w()}/{w()}.git",
    lambda: f"postgres://db.internal:5432/{w()}",
    lambda: f"redis://cache:6379/0",
    lambda: f"https://docs.example.org/auth/tokens#refresh-token-rotation",
    lambda: f"https://api.example.com/v1/{w()}s/{uuid()}",
    lambda: f"mailto:{w()}@example.com?subject=password%20reset",
    lambda: f"https://login.example.com/oauth/authorize?client_id={w()}-app&response_type=code&state={hexs(16)}",
    lambda: f"amqp://rabbitmq:5672/%2f",
    lambda: f"https://hooks.example.com/services/{w()}",
]

PROSE = [
    lambda: "Please reset your password from the account page; the link expires in an hour.",
    lambda: f"The {w()} service rotates its API token every {R.randint(2, 90)} days.",
    lambda: "Never paste a private key into chat; use the secrets manager instead.",
    lambda: "Bearer tokens are defined in RFC 6750, and the Authorization header carries them.",
    lambda: f"I changed the password policy to require {R.randint(10, 16)} characters.",
    lambda: "The token bucket allows 10 requests per minute per client.",
    lambda: "Store the secret key in Vault, not in the repository.",
    lambda: f"Can you check why the {w()} job fails with 'invalid token' after the deploy?",
    lambda: "Passwords are hashed with Argon2id; the key derivation parameters live in config.",
    lambda: "The session key is rotated whenever the user logs in again.",
    lambda: "Set GITHUB_TOKEN in the repository secrets and reference it from the workflow.",
    lambda: f"Sprint {R.randint(1, 40)}: move password reset to the new {w()} service.",
    lambda: "The access key ID identifies the key; the secret access key signs requests.",
    lambda: "Use a placeholder like <your-token> in the docs, never a real one.",
    lambda: "Keys in the map are sorted, so the output is deterministic.",
    lambda: "The primary key of the orders table is a UUID.",
    lambda: f"Password: see the team vault entry for {w()}.",
    lambda: "Token: expired (refresh required)",
]


def main():
    kinds = [(CODE, 700), (LOCK, 450), (IDS, 450), (URLS, 250), (PROSE, 250)]
    lines = []
    for templates, n in kinds:
        for _ in range(n):
            lines.append(R.choice(templates)())
    R.shuffle(lines)
    print("\n".join(lines))


main()
