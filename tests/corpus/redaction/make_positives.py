#!/usr/bin/env python3
"""Writes positives.tsv: fake credentials in the shapes providers document, in realistic text.

Each shape below is taken from the provider's published description of its token format
(prefix, length, alphabet), not from the bridge's regexes. Bodies are random (fixed seed) so the
file is reproducible; none is a live credential. In the output, `~~` is inserted after each
token's first four characters so that secret scanners do not flag this repository; the bench and
the unit test remove it before use.

Line format: rule-id TAB secret [TAB text]. Without text, the bench and tests embed the secret in
four contexts (chat sentence, code block, .env line, JSON). With text, `{S}` marks the secret and
`⏎` a newline.

Run: python3 tests/corpus/redaction/make_positives.py > tests/corpus/redaction/positives.tsv
"""
import random
import string

R = random.Random(20261201)
UP = string.ascii_uppercase
LO = string.ascii_lowercase
DIG = string.digits
ALNUM = UP + LO + DIG
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
BASE32 = UP + "234567"
BECH32 = "QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L"


def r(alphabet, n):
    return "".join(R.choice(alphabet) for _ in range(n))


def uuid():
    return f"{r(HEX, 8)}-{r(HEX, 4)}-4{r(HEX, 3)}-a{r(HEX, 3)}-{r(HEX, 12)}"


def mark(s):
    return s[:4] + "~~" + s[4:]


out = []


def tok(rule, secret, text=None):
    line = f"{rule}\t{mark(secret)}"
    if text is not None:
        line += "\t" + text.replace("\n", "⏎")
    out.append(line)


# ---- AI providers
tok("openai-key", "sk-proj-" + r(B64URL, 74) + "T3BlbkFJ" + r(B64URL, 74))
tok("openai-key", "sk-" + r(ALNUM, 20) + "T3BlbkFJ" + r(ALNUM, 20))
tok("openai-key", "sk-svcacct-" + r(B64URL, 74) + "T3BlbkFJ" + r(B64URL, 74),
    "OPENAI_API_KEY={S}")
tok("openai-key", "sk-admin-" + r(B64URL, 74) + "T3BlbkFJ" + r(B64URL, 74),
    "the admin key for usage exports is {S} (rotate after the audit)")
tok("anthropic-key", "sk-ant-api03-" + r(B64URL, 93) + "AA")
tok("anthropic-key", "sk-ant-admin01-" + r(B64URL, 93) + "AA",
    'curl https://api.anthropic.com/v1/organizations/users -H "x-api-key: {S}"')
tok("google-api-key", "AIza" + r(B64URL, 35))
tok("xai-key", "xai-" + r(ALNUM, 80))
tok("groq-key", "gsk_" + r(ALNUM, 52))
tok("huggingface-token", "hf_" + r(UP + LO, 34))
tok("huggingface-token", "api_org_" + r(UP + LO, 34), "HF org token: {S}")
tok("replicate-token", "r8_" + r(ALNUM, 37))
tok("perplexity-key", "pplx-" + r(ALNUM, 48))
tok("cohere-key", r(ALNUM, 40), "COHERE_API_KEY={S}")
tok("cohere-key", r(ALNUM, 40), "co = cohere.Client('{S}')")
tok("cohere-key", r(ALNUM, 40), '{"provider": "cohere", "api_key": "{S}"}')
tok("mistral-key", r(ALNUM, 32), "export MISTRAL_API_KEY={S}")
tok("mistral-key", r(ALNUM, 32), 'client = Mistral(api_key="{S}")  # mistral')
tok("mistral-key", r(ALNUM, 32), "my Mistral key is {S}, works in la plateforme")
tok("google-oauth", "GOCSPX-" + r(B64URL, 28))
tok("google-oauth", "ya29." + r(B64URL, 120), "Authorization header was built from ya29 token {S}")
tok("google-oauth", "1//0" + r(B64URL, 99), '{"refresh_token": "{S}", "scope": "openid"}')

# ---- Cloud
tok("aws-access-key", "AKIA" + r(BASE32, 16))
tok("aws-access-key", "ASIA" + r(BASE32, 16))
tok("aws-secret-key", r(B64, 40), "aws_secret_access_key = {S}")
tok("aws-secret-key", r(B64, 40), "export AWS_SECRET_ACCESS_KEY={S}")
tok("aws-secret-key", r(B64, 40), '{"AccessKeyId": "ASIAXXX", "AwsSecretKey": "{S}"}')
tok("aws-session-token", "IQoJb3JpZ2luX2Vj" + r(B64, 380))
tok("aws-session-token", "FwoGZXIvYXdzE" + r(B64, 300), "aws_session_token = {S}")
tok("aws-session-token", r(B64, 200), "export AWS_SESSION_TOKEN={S}")
for _ in range(3):
    tok("gcp-private-key-id", r(HEX, 40),
        '{"type": "service_account", "project_id": "demo-prod", "private_key_id": "{S}", "client_email": "ci@demo-prod.iam.gserviceaccount.com"}')
tok("azure-connection-string", r(B64, 86) + "==",
    "DefaultEndpointsProtocol=https;AccountName=prodlogs;AccountKey={S};EndpointSuffix=core.windows.net")
tok("azure-connection-string", r(B64, 43) + "=",
    "Endpoint=sb://orders.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey={S}")
tok("azure-connection-string", r(B64, 86) + "==",
    '"AzureWebJobsStorage": "DefaultEndpointsProtocol=https;AccountName=fn01;AccountKey={S}"')
tok("azure-sas", r(ALNUM, 40) + "%2B" + r(ALNUM, 2) + "%3D",
    "https://prodlogs.blob.core.windows.net/c/f.txt?sv=2022-11-02&ss=b&srt=o&sp=r&se=2026-12-31&sig={S}")
tok("azure-sas", r(ALNUM, 43) + "%3D",
    "upload with azcopy to 'https://x.blob.core.windows.net/in?sp=racwdl&st=2026-01-01&sig={S}'")
tok("azure-sas", r(ALNUM, 40) + "%2F" + r(ALNUM, 3) + "%3D",
    "SAS_URL=https://acct.queue.core.windows.net/q?sv=2021-08-06&sig={S}&se=2027-01-01")
tok("azure-client-secret", r(ALNUM, 3) + "8Q~" + r(ALNUM + "_~.-", 34))
tok("azure-client-secret", r(ALNUM, 3) + "7Q~" + r(ALNUM + "_~.", 34), "AZURE_CLIENT_SECRET={S}")
tok("alibaba-key", "LTAI" + r(ALNUM, 20))
tok("alibaba-key", r(ALNUM, 30), "alibaba_cloud_access_key_secret = {S}")
tok("digitalocean-token", "dop_v1_" + r(HEX, 64))
tok("digitalocean-token", "doo_v1_" + r(HEX, 64), "doctl auth init -t {S}")
tok("fly-token", "fo1_" + r(B64URL, 43))
tok("fly-token", "fm2_" + r(B64, 200), "fly tokens create deploy printed: FlyV1 {S}")
tok("vercel-token", r(ALNUM, 24), "VERCEL_TOKEN={S}")
tok("vercel-token", r(ALNUM, 24), "vercel deploy --prod --token {S}")
tok("vercel-token", r(ALNUM, 24), '{"vercel": {"token": "{S}"}}')
tok("heroku-key", "HRKU-AA" + r(B64URL, 58))
tok("heroku-key", uuid(), "HEROKU_API_KEY={S}")
tok("heroku-key", uuid(), "heroku auth token printed {S} for the pipeline")
tok("cloudflare-token", r(B64URL, 40), "CLOUDFLARE_API_TOKEN={S}")
tok("cloudflare-token", r(HEX, 37), 'cloudflare:\n  email: ops@example.org\n  api_key: "{S}"')
tok("cloudflare-token", "v1.0-" + r(HEX, 24) + "-" + r(HEX, 146))

# ---- Code hosting and CI
tok("github-token", "ghp_" + r(ALNUM, 36))
tok("github-token", "github_pat_11" + r(UP + DIG, 20) + "_" + r(ALNUM, 59))
tok("github-token", "ghs_" + r(ALNUM, 36), "git clone https://x-access-token:{S}@github.com/org/repo.git")
tok("gitlab-token", "glpat-" + r(B64URL, 20))
tok("gitlab-token", "glrt-" + r(B64URL, 20), "gitlab-runner register --token {S}")
tok("gitlab-token", "gldt-" + r(B64URL, 20), "deploy token gldt for the registry: {S}")
tok("gitlab-token", "glcbt-64_" + r(B64URL, 20), "CI_JOB_TOKEN was {S} in the log")
tok("gitlab-token", "glft-" + r(B64URL, 20), "feed token {S}")
tok("gitlab-token", "GR1348941" + r(B64URL, 20), "registration token {S}")
tok("atlassian-token", "ATBB" + r(ALNUM, 24) + r(HEX.upper(), 8))
tok("atlassian-token", "ATATT3xFfGF0" + r(B64URL, 170) + "=" + r(HEX.upper(), 8))
tok("circleci-token", "CCIPAT_" + r(ALNUM, 22) + "_" + r(HEX, 40))
tok("circleci-token", r(HEX, 40), "CIRCLECI_TOKEN={S}")
tok("buildkite-token", "bkua_" + r(HEX, 40))

# ---- Messaging
tok("slack-token", f"xoxb-{r(DIG, 12)}-{r(DIG, 13)}-{r(ALNUM, 24)}")
tok("slack-token", f"xoxp-{r(DIG, 12)}-{r(DIG, 12)}-{r(DIG, 13)}-{r(HEX, 32)}")
tok("slack-token", f"xapp-1-A{r(UP + DIG, 10)}-{r(DIG, 13)}-{r(HEX, 64)}")
tok("slack-webhook", f"T{r(UP + DIG, 8)}/B{r(UP + DIG, 10)}/{r(ALNUM, 24)}",
    "post to https://hooks.slack.com/services/{S} when the build breaks")
tok("slack-webhook", f"T{r(UP + DIG, 10)}/B{r(UP + DIG, 10)}/{r(ALNUM, 24)}",
    'SLACK_WEBHOOK_URL="https://hooks.slack.com/services/{S}"')
tok("slack-webhook", f"T{r(UP + DIG, 8)}/B{r(UP + DIG, 8)}/{r(ALNUM, 24)}",
    '{"webhook": "https://hooks.slack.com/services/{S}"}')
tok("discord-token", r(B64URL, 68), "https://discord.com/api/webhooks/" + r(DIG, 18) + "/{S}")
tok("discord-token", "MT" + r(ALNUM, 24) + "." + r(B64URL, 6) + "." + r(B64URL, 38),
    "DISCORD_BOT_TOKEN={S}")
tok("discord-token", "OD" + r(ALNUM, 24) + "." + r(B64URL, 6) + "." + r(B64URL, 38),
    "client.run('{S}')  # discord bot")
tok("telegram-bot-token", r(DIG, 10) + ":AA" + r(B64URL, 33))
tok("twilio-key", "SK" + r(HEX, 32))
tok("twilio-key", r(HEX, 32), "TWILIO_AUTH_TOKEN={S}")
tok("sendgrid-key", "SG." + r(B64URL, 22) + "." + r(B64URL, 43))
tok("mailgun-key", "key-" + r(HEX, 32))
tok("mailgun-key", f"{r(HEX, 32)}-{r(HEX, 8)}-{r(HEX, 8)}", "MAILGUN_API_KEY={S}")
tok("mailchimp-key", r(HEX, 32) + "-us21")
tok("postmark-token", uuid(), "POSTMARK_SERVER_TOKEN={S}")
tok("postmark-token", uuid(), 'curl -H "X-Postmark-Server-Token: {S}" https://api.postmarkapp.com/email')
tok("postmark-token", uuid(), "the postmark token is {S}")

# ---- Payments
tok("stripe-key", "sk_live_51" + r(ALNUM, 97))
tok("stripe-key", "rk_live_51" + r(ALNUM, 97))
tok("stripe-webhook-secret", "whsec_" + r(ALNUM, 32))
tok("square-token", "EAAA" + r(B64URL, 60))
tok("square-token", "sq0csp-" + r(B64URL, 43))
tok("braintree-token", f"access_token$production${r(LO + DIG, 16)}${r(HEX, 32)}")
tok("paypal-secret", r(B64URL, 80), "PAYPAL_CLIENT_SECRET={S}")
tok("paypal-secret", r(B64URL, 80), 'paypal:\n  secret: "{S}"')
tok("paypal-secret", r(B64URL, 80), "the paypal secret {S} was in the screenshot")
tok("shopify-token", "shpat_" + r(HEX, 32))
tok("shopify-token", "shpss_" + r(HEX, 32))

# ---- Package registries
tok("npm-token", "npm_" + r(ALNUM, 36))
tok("pypi-token", "pypi-AgEIcHlwaS5vcmc" + r(B64URL, 150))
tok("pypi-token", "pypi-AgEIcHlwaS5vcmc" + r(B64URL, 150),
    "[pypi]\nusername = __token__\npassword = {S}")
tok("rubygems-key", "rubygems_" + r(HEX, 48))
tok("crates-io-token", "cio" + r(ALNUM, 32))
tok("nuget-key", "oy2" + r(LO + DIG, 43))
tok("docker-hub-token", "dckr_pat_" + r(B64URL, 27))

# ---- Observability
tok("datadog-key", r(HEX, 32), "DD_API_KEY={S}")
tok("datadog-key", r(HEX, 40), "DD_APP_KEY={S}")
tok("datadog-key", r(HEX, 32), 'datadog:\n  apiKey: "{S}"')
tok("datadog-key", r(HEX, 32), 'curl -H "DD-API-KEY: {S}" https://api.datadoghq.com/api/v1/validate')
tok("newrelic-key", "NRAK-" + r(UP + DIG, 27))
tok("newrelic-key", r(HEX, 36) + "NRAL")
tok("sentry-token", "sntryu_" + r(HEX, 64))
tok("sentry-token", r(HEX, 32), "SENTRY_DSN=https://{S}@o4504.ingest.sentry.io/4505")
tok("sentry-token", r(HEX, 32), "dsn: 'https://{S}@sentry.example-corp.net/12'")
tok("grafana-token", "glc_" + r(B64, 120) + "==")
tok("grafana-token", "glsa_" + r(ALNUM, 32) + "_" + r(HEX, 8))

# ---- Secret managers
tok("vault-token", "hvs." + r(B64URL, 90))
tok("vault-token", "hvb." + r(B64URL, 130))
tok("vault-token", "s." + r(ALNUM, 24), "VAULT_TOKEN={S}")
tok("doppler-token", "dp.pt." + r(ALNUM, 43))
tok("doppler-token", "dp.st.prd." + r(ALNUM, 40))
tok("onepassword-token", "ops_eyJ" + r(B64, 600))
tok("onepassword-token", "A3-" + r(UP + DIG, 6) + "-" + r(UP + DIG, 6) + "-" + "-".join(r(UP + DIG, 5) for _ in range(4)),
    "my 1Password secret key is {S}")
tok("infisical-token", f"st.{uuid()}.{r(HEX, 32)}.{r(HEX, 32)}")

# ---- Private keys (the secret checked is the first body line)
for label in ["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY",
              "ENCRYPTED PRIVATE KEY", "DSA PRIVATE KEY", "PGP PRIVATE KEY BLOCK"]:
    body = [r(B64, 64) for _ in range(4)]
    tok("private-key", body[0], f"-----BEGIN {label}-----\n" + "{S}\n" + "\n".join(body[1:]) + f"\n-----END {label}-----")
body = [r(B64, 64) for _ in range(3)]
tok("private-key", body[0],
    '{"type": "service_account", "private_key": "-----BEGIN PRIVATE KEY-----\\n{S}\\n' + "\\n".join(body[1:]) + '\\n-----END PRIVATE KEY-----\\n"}')
tok("private-key", r(B64, 64), "key: -----BEGIN OPENSSH PRIVATE KEY----- {S} -----END OPENSSH PRIVATE KEY-----")
tok("private-key", r(B64, 64), "here's the key file, cut off:\n-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\n\n{S}")
tok("putty-private-key", r(B64, 64),
    "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: deploy\nPublic-Lines: 2\nAAAAC3NzaC1lZDI1NTE5AAAAI\nPrivate-Lines: 1\n{S}\nPrivate-MAC: " + r(HEX, 64))
tok("putty-private-key", r(B64, 64),
    "PuTTY-User-Key-File-2: ssh-rsa\nPrivate-Lines: 1\n{S}\nPrivate-MAC: " + r(HEX, 40))
tok("putty-private-key", r(B64, 64), "paste of my .ppk: PuTTY-User-Key-File-3: ssh-rsa Private-Lines: 1 {S} Private-MAC: " + r(HEX, 64))
tok("age-secret-key", "AGE-SECRET-KEY-1" + r(BECH32, 58))

# ---- Databases
for scheme in ["postgres", "postgresql+psycopg2", "mysql+pymysql", "mongodb+srv", "amqp", "amqps", "redis", "rediss", "mssql+pyodbc", "jdbc:mysql", "jdbc:postgresql", "oracle+cx_oracle"]:
    pw = r(ALNUM, 16)
    user = "" if scheme.startswith("redis") else "app"
    tok("url-password", pw, f"{scheme}://{user}:{{S}}@db.internal:5432/prod")
tok("password-assignment", r(ALNUM, 14), "jdbc:sqlserver://db:1433;databaseName=prod;user=sa;password={S};encrypt=true")
tok("password-assignment", r(ALNUM, 14), "jdbc:postgresql://db:5432/prod?user=app&password={S}&ssl=true")
tok("password-assignment", r(ALNUM, 14), "Server=tcp:db.example.net,1433;Initial Catalog=prod;User ID=app;Password={S};Encrypt=True")
tok("jdbc-oracle-password", r(ALNUM, 12), "jdbc:oracle:thin:scott/{S}@db.internal:1521/ORCL")
tok("jdbc-oracle-password", r(ALNUM, 12), "url=jdbc:oracle:thin:app_user/{S}@//10.0.0.5:1521/prod")
tok("jdbc-oracle-password", r(ALNUM, 12), "connect with jdbc:oracle:oci:reporting/{S}@tns_alias")

# ---- Config idioms
tok("npmrc-auth", "npm_" + r(ALNUM, 36), "//registry.npmjs.org/:_authToken={S}")
tok("npmrc-auth", r(B64, 24) + "==", "_auth={S}\nalways-auth=true")
tok("npmrc-auth", r(B64, 20), "//npm.pkg.example.com/:_password={S}")
tok("npmrc-auth", r(ALNUM, 36), "//npm.pkg.github.com/:_authToken={S}")
tok("docker-config-auth", r(B64, 28) + "==", '{"auths": {"https://index.docker.io/v1/": {"auth": "{S}"}}}')
tok("docker-config-auth", r(B64, 32), '{\n  "auths": {\n    "ghcr.io": {\n      "auth": "{S}"\n    }\n  }\n}')
tok("docker-config-auth", r(B64, 40), '"auth": "{S}",')
tok("k8s-secret-data", r(B64, 24) + "==",
    "apiVersion: v1\nkind: Secret\nmetadata:\n  name: api\ntype: Opaque\ndata:\n  stripe-api: {S}")
tok("k8s-secret-data", r(B64, 32),
    "kind: Secret\ndata:\n  DATABASE_URL: {S}\n  LOG_LEVEL: aW5mbw==")
tok("k8s-secret-data", r(B64, 40),
    '{"apiVersion": "v1", "kind": "Secret", "data": {\n  "tls.key": "{S}"\n}}')
tok("kubeconfig-credential", r(B64, 120),
    "users:\n- name: admin\n  user:\n    client-certificate-data: LS0tLS1CRUdJTiBDRVJU\n    client-key-data: {S}")
tok("kubeconfig-credential", "eyJhbGciOiJSUzI1NiJ9." + r(B64URL, 60) + "." + r(B64URL, 80),
    "    auth-provider:\n      config:\n        id-token: {S}")
tok("kubeconfig-credential", r(B64URL, 60), "        refresh-token: {S}")
tok("secret-assignment", r(ALNUM, 40), "users:\n- name: ci\n  user:\n    token: {S}")
tok("netrc-password", r(ALNUM, 18), "machine api.heroku.com\n  login me@example.org\n  password {S}")
tok("netrc-password", r(ALNUM, 18), "machine github.com login octocat password {S}")
tok("netrc-password", r(ALNUM + "!#%", 14), "default login anonymous password {S}")
tok("terraform-variable", r(ALNUM, 20), 'variable "db_password" {\n  type    = string\n  default = "{S}"\n}')
tok("terraform-variable", r(ALNUM, 32), 'variable "api_token" { default = "{S}" }')
tok("terraform-variable", r(ALNUM, 24), 'variable "signing_key" {\n  description = "HMAC key"\n  default     = "{S}"\n  sensitive   = true\n}')
tok("password-assignment", r(ALNUM, 16), 'db_password = "{S}"')
tok("password-assignment", r(ALNUM, 16), "TF_VAR_db_password={S} terraform apply")
tok("password-assignment", r(ALNUM, 16), "DB_PASSWORD={S}")
tok("password-assignment", r(ALNUM, 8) + ";" + r(ALNUM, 6), "password={S}")
tok("secret-assignment", r(ALNUM, 32), "[pypi]\nusername = someone\n[testpypi]\ntoken = {S}")
tok("generic-key-assignment", r(ALNUM + "+/", 44), "ENCRYPTION_KEY={S}")
tok("generic-key-assignment", r(HEX, 64), "signing_key: {S}")
tok("generic-key-assignment", r(ALNUM, 32), 'const MASTER_KEY = "{S}";')
tok("generic-key-assignment", r(ALNUM, 32), "export LICENSE_KEY='{S}'")

# ---- Command lines
tok("mysql-cli-password", r(ALNUM, 12), "mysql -h db -u root -p{S} prod < dump.sql")
tok("mysql-cli-password", r(ALNUM, 12), "mysqldump -uadmin -p'{S}' --all-databases")
tok("mysql-cli-password", r(ALNUM, 12), "run `mariadb -u app -p{S} -e 'show tables'`")
tok("sshpass-password", r(ALNUM, 12), "sshpass -p {S} ssh deploy@10.0.0.4")
tok("sshpass-password", r(ALNUM, 12), "sshpass -p'{S}' scp build.tgz host:")
tok("sshpass-password", r(ALNUM, 12), 'sshpass -v -p "{S}" rsync -a dist/ web:/srv')
tok("cli-user-password", r(ALNUM, 12), "curl -u admin:{S} https://jenkins.internal/api/json")
tok("cli-user-password", r(ALNUM, 12), "curl --user 'ci-bot:{S}' -X POST https://nexus/upload")
tok("cli-user-password", r(ALNUM, 12), "wget --http-user=ops --http-password=x -u ops:{S} https://files/")
tok("cli-secret-flag", r(ALNUM, 16), "./deploy --env prod --password {S}")
tok("cli-secret-flag", r(ALNUM, 24), "vault login --token {S}")
tok("cli-secret-flag", r(ALNUM, 24), "tool sync --api-key '{S}' --verbose")
tok("authorization-header", r(B64, 28), 'curl -H "Authorization: Basic {S}" https://api.internal/v1')
tok("authorization-header", r(ALNUM, 40), "curl -H 'Authorization: token {S}' https://api.github.com/user")
tok("authorization-header", r(ALNUM, 40), '{"headers": {"Authorization": "Api-Key {S}"}}')
tok("bearer-token", r(B64URL, 40), "send it with bearer {S} in the header")
tok("bearer-token", r(B64URL, 48), "requests.get(url, headers={'X-Auth': 'Bearer {S}'})")
tok("bearer-token", r(B64URL, 32), "the webhook signs with Bearer {S}; rotate it monthly")
tok("secret-assignment", r(ALNUM, 28), '{"client_id": "web", "client_secret": "{S}"}')
tok("jwt", "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + r(B64URL, 80) + "." + r(B64URL, 43))

print("# Generated by make_positives.py; see its docstring. rule-id TAB secret [TAB text]")
print("\n".join(out))
