//! The rows: every setting, in the order the help and the README list them.

use crate::{Kind, STATIC_FILTERS, Section, Setting, defaults, ranges};

const NONE: &str = "";

/// Declares each row as a constant, and [`ALL`] in the order given: a new
/// setting is one row here.
macro_rules! settings {
    ($($(#[$doc:meta])* $name:ident = $row:expr;)*) => {
        $($(#[$doc])* pub const $name: Setting = $row;)*
        /// Every setting, in the order the help and the README list them.
        pub const ALL: [&Setting; [$(stringify!($name)),*].len()] = [$(&$name),*];
    };
}

settings! {
    /// `HARNESS_API_BASE`.
    API_BASE = Setting {
        key: "api_base",
        section: Section::Harness,
        env: "HARNESS_API_BASE",
        flag: "api-base",
        kind: Kind::Text {
            default: Some(defaults::API_BASE),
        },
        unset: NONE,
        secret: false,
        command: true,
        doc: "API base URL: a vanity host or a `/gateway` path also work. `http://` only for \
              127.0.0.1/localhost/[::1]. The only origin the component may reach.",
    };

    /// `HARNESS_ACCOUNT_ID`.
    ACCOUNT_ID = Setting {
        key: "account_id",
        section: Section::Harness,
        env: "HARNESS_ACCOUNT_ID",
        flag: "account-id",
        kind: Kind::Text { default: None },
        unset: "required",
        secret: false,
        command: true,
        doc: "Account identifier.",
    };

    /// `HARNESS_API_FLAVOR`.
    API_FLAVOR = Setting {
        key: "api_flavor",
        section: Section::Harness,
        env: "HARNESS_API_FLAVOR",
        flag: "api-flavor",
        kind: Kind::Choice {
            choices: &["list", "list-v2"],
            default: Some("list"),
        },
        unset: NONE,
        secret: false,
        command: true,
        doc: "Which list endpoint to page. `list`: `POST /audit/api/audits/list`, offset pages, the API \
              every Harness client uses. `list-v2`: `POST /audit/api/audits/listV2` with \
              `pageToken`/`hasNext`, as the SecOps recipe calls it; found in no Harness source, so \
              unverified. A token is sent only with the body and window it was issued for.",
    };

    /// `HARNESS_API_KEY`.
    API_KEY = Setting {
        key: "api_key",
        section: Section::Harness,
        env: "HARNESS_API_KEY",
        flag: NONE,
        kind: Kind::Text { default: None },
        unset: "required (or the file)",
        secret: true,
        command: true,
        doc: "A PAT or SAT (`pat.<account>.<id>.<secret>`) with `core_audit_view`. Never a flag or \
              file key: flags show in `ps`, files get committed. The host adds it to each request; the \
              component never sees it.",
    };

    /// `HARNESS_API_KEY_FILE`.
    API_KEY_FILE = Setting {
        key: "api_key_file",
        section: Section::Harness,
        env: "HARNESS_API_KEY_FILE",
        flag: "api-key-file",
        kind: Kind::Text { default: None },
        unset: "none",
        secret: false,
        command: true,
        doc: "File holding the key (a mounted secret), used when `HARNESS_API_KEY` is unset.",
    };

    /// `PAGE_SIZE`.
    PAGE_SIZE = Setting {
        key: "page_size",
        section: Section::Harness,
        env: "PAGE_SIZE",
        flag: "page-size",
        kind: Kind::Number {
            default: defaults::PAGE_SIZE,
            range: ranges::PAGE_SIZE,
        },
        unset: NONE,
        secret: false,
        command: true,
        doc: "Events per request.",
    };

    /// `START_MINUTES_BACK`.
    START_MINUTES_BACK = Setting {
        key: "start_minutes_back",
        section: Section::Harness,
        env: "START_MINUTES_BACK",
        flag: "start-minutes-back",
        kind: Kind::Number {
            default: defaults::START_MINUTES_BACK,
            range: ranges::START_MINUTES_BACK,
        },
        unset: NONE,
        secret: false,
        command: true,
        doc: "Where the first run starts, in minutes before now. Ignored once a checkpoint exists.",
    };

    /// `MAX_RETRIES`.
    MAX_RETRIES = Setting {
        key: "max_retries",
        section: Section::Harness,
        env: "MAX_RETRIES",
        flag: "max-retries",
        kind: Kind::Number {
            default: defaults::MAX_RETRIES,
            range: ranges::MAX_RETRIES,
        },
        unset: NONE,
        secret: false,
        command: true,
        doc: "Retries per request after 429, 5xx, network errors, or answers that are not a page but may \
              be the next time (an HTML page, another status, a body cut short or too slow). 400/401/403, and \
              an answer too large or in an encoding the component cannot undo, are never retried.",
    };

    /// `RETRY_BASE_MS`.
    RETRY_BASE_MS = Setting {
        key: "retry_base_ms",
        section: Section::Harness,
        env: "RETRY_BASE_MS",
        flag: "retry-base-ms",
        kind: Kind::Number {
            default: defaults::RETRY_BASE_MS,
            range: ranges::RETRY_BASE_MS,
        },
        unset: NONE,
        secret: false,
        command: true,
        doc: "First backoff delay, in milliseconds. Each retry doubles the ceiling (max 60 s), with \
              full jitter. A `Retry-After` header is honoured (max 300 s).",
    };

    /// `RETRY_BUDGET_SECONDS`.
    RETRY_BUDGET_SECS = Setting {
        key: "retry_budget_secs",
        section: Section::Harness,
        env: "RETRY_BUDGET_SECONDS",
        flag: "retry-budget-secs",
        kind: Kind::Number {
            default: defaults::RETRY_BUDGET_SECS,
            range: ranges::RETRY_BUDGET_SECS,
        },
        unset: NONE,
        secret: false,
        command: true,
        doc: "Total time one pass may wait between retries, in seconds. Past it the pass fails (exit \
              4) and the next run resumes.",
    };

    /// `MAX_REQUESTS_PER_MINUTE`.
    MAX_REQUESTS_PER_MINUTE = Setting {
        key: "max_requests_per_minute",
        section: Section::Harness,
        env: "MAX_REQUESTS_PER_MINUTE",
        flag: "max-requests-per-minute",
        kind: Kind::Number {
            default: defaults::MAX_REQUESTS_PER_MINUTE,
            range: ranges::MAX_REQUESTS_PER_MINUTE,
        },
        unset: NONE,
        secret: false,
        command: true,
        doc: "Requests a minute on the API key. Every pass on the key in one process draws from one \
              pace (`serve`'s tenants, a live tenant beside a backfill). On a 429 the pace drops to 90% of \
              what Harness admitted in the last minute, at most halving, at most once a minute; from 20 s \
              after a cut it probes, every 10 s, by steps from 1% of this that double until the next 429. \
              `0`: unpaced until Harness refuses a request. Harness allows 400 a minute per key; the default leaves 5% for the edge's clock.",
    };

    /// `SETTLE_LAG_SECONDS`.
    SETTLE_LAG_SECS = Setting {
        key: "settle_lag_secs",
        section: Section::Harness,
        env: "SETTLE_LAG_SECONDS",
        flag: "settle-lag-secs",
        kind: Kind::Number {
            default: defaults::SETTLE_LAG_SECS,
            range: ranges::WINDOW_SECS,
        },
        unset: NONE,
        secret: false,
        command: true,
        doc: "A pass reads only events at least this old, in seconds (window end = now − lag): the last \
              seconds, where events are still arriving. Events Harness makes visible later are read by \
              the next window (`OVERLAP_SECONDS`) or by reconciliation.",
    };

    /// `OVERLAP_SECONDS`.
    OVERLAP_SECS = Setting {
        key: "overlap_secs",
        section: Section::Harness,
        env: "OVERLAP_SECONDS",
        flag: "overlap-secs",
        kind: Kind::Number {
            default: defaults::OVERLAP_SECS,
            range: ranges::WINDOW_SECS,
        },
        unset: NONE,
        secret: false,
        command: true,
        doc: "Each window starts this long before the previous one ended, in seconds. It picks up events \
              up to this late on the next pass; re-read events are dropped by `auditId`. Later ones are \
              found by reconciliation's counts. Every pass reads this span again: a busy account pays \
              one page per `PAGE_SIZE` events in it.",
    };

    /// `RECONCILE_INTERVAL_SECONDS`.
    RECONCILE_INTERVAL_SECS = Setting {
        key: "reconcile_interval_secs",
        section: Section::Harness,
        env: "RECONCILE_INTERVAL_SECONDS",
        flag: "reconcile-interval-secs",
        kind: Kind::Number {
            default: defaults::RECONCILE_INTERVAL_SECS,
            range: ranges::RECONCILE_INTERVAL_SECS,
        },
        unset: NONE,
        secret: false,
        command: true,
        doc: "Seconds between checks of Harness's hourly counts. Each hour of the last \
              `RECONCILE_HOURS` is counted and re-read if it holds fewer events than counted. Checked \
              at the end of a pass, so a `run` every 15 minutes reconciles once an hour. A count stops \
              where the next window starts (now − `SETTLE_LAG_SECONDS` − `OVERLAP_SECONDS`): later \
              events are that window's to read.",
    };

    /// `RECONCILE_HOURS`.
    RECONCILE_HOURS = Setting {
        key: "reconcile_hours",
        section: Section::Harness,
        env: "RECONCILE_HOURS",
        flag: "reconcile-hours",
        kind: Kind::Number {
            default: defaults::RECONCILE_HOURS,
            range: ranges::RECONCILE_HOURS,
        },
        unset: NONE,
        secret: false,
        command: true,
        doc: "Hours reconciliation looks back; `0` turns it off. A window that comes back short of its \
              count is still checked. Events that become visible later than this after their \
              timestamp are not collected. The checkpoint keeps about 16 bytes per event stored in \
              this span.",
    };

    /// `RECONCILE_RECENT_INTERVAL_SECONDS`.
    RECONCILE_RECENT_INTERVAL_SECS = Setting {
        key: "reconcile_recent_interval_secs",
        section: Section::Harness,
        env: "RECONCILE_RECENT_INTERVAL_SECONDS",
        flag: "reconcile-recent-interval-secs",
        kind: Kind::Number {
            default: defaults::RECONCILE_RECENT_INTERVAL_SECS,
            range: ranges::RECONCILE_INTERVAL_SECS,
        },
        unset: NONE,
        secret: false,
        command: true,
        doc: "Seconds between checks of the recent hours: each hour of the last \
              `RECONCILE_RECENT_HOURS` is counted this often, and re-read if it holds fewer events than \
              counted, so an event minutes or hours late is collected within this interval of becoming \
              visible.",
    };

    /// `RECONCILE_RECENT_HOURS`.
    RECONCILE_RECENT_HOURS = Setting {
        key: "reconcile_recent_hours",
        section: Section::Harness,
        env: "RECONCILE_RECENT_HOURS",
        flag: "reconcile-recent-hours",
        kind: Kind::Number {
            default: defaults::RECONCILE_RECENT_HOURS,
            range: ranges::RECONCILE_HOURS,
        },
        unset: NONE,
        secret: false,
        command: true,
        doc: "Hours counted as recent, checked every `RECONCILE_RECENT_INTERVAL_SECONDS` (at most \
              `RECONCILE_HOURS` of them); `0` leaves only the check every `RECONCILE_INTERVAL_SECONDS`.",
    };

    /// `HTTP_TIMEOUT_SECS`.
    HTTP_TIMEOUT_SECS = Setting {
        key: "http_timeout_secs",
        section: Section::Harness,
        env: "HTTP_TIMEOUT_SECS",
        flag: "http-timeout-secs",
        kind: Kind::Number {
            default: 60,
            range: 1..=600,
        },
        unset: NONE,
        secret: false,
        command: false,
        doc: "Cap on the connect, first-byte and between-bytes timeouts, and the time a whole answer may take to \
              arrive after its first byte, in seconds. An answer that trickles past it is asked again.",
    };

    /// `FILTER_MODULES`.
    MODULES = Setting {
        key: "modules",
        section: Section::Filters,
        env: "FILTER_MODULES",
        flag: "modules",
        kind: Kind::List,
        unset: "all",
        secret: false,
        command: true,
        doc: "`modules` filter, such as `CD,PMS`. Case-insensitive, checked against Harness's \
              `ModuleType` values.",
    };

    /// `FILTER_ACTIONS`.
    ACTIONS = Setting {
        key: "actions",
        section: Section::Filters,
        env: "FILTER_ACTIONS",
        flag: "actions",
        kind: Kind::List,
        unset: "all",
        secret: false,
        command: true,
        doc: "`actions` filter, such as `CREATE,UPDATE`. Upper-case (the API is case-sensitive here), \
              checked against Harness's `Action` values.",
    };

    /// `STATIC_FILTER`.
    STATIC_FILTER = Setting {
        key: "static_filter",
        section: Section::Filters,
        env: "STATIC_FILTER",
        flag: "static-filter",
        kind: Kind::Choice {
            choices: &STATIC_FILTERS,
            default: None,
        },
        unset: "none",
        secret: false,
        command: true,
        doc: "`staticFilter`: leave out logins or system events.",
    };

    /// `FILTER_PRINCIPALS`.
    PRINCIPALS = Setting {
        key: "principals",
        section: Section::Filters,
        env: "FILTER_PRINCIPALS",
        flag: "principals",
        kind: Kind::List,
        unset: "anyone",
        secret: false,
        command: false,
        doc: "Who acted: `TYPE:identifier` entries. For example \
              `USER:alice@example.com,SERVICE_ACCOUNT:ci_bot,API_KEY:deploy_key,SYSTEM` (users by \
              e-mail; `SYSTEM` alone is the system principal).",
    };

    /// `FILTER_SCOPES`.
    SCOPES = Setting {
        key: "scopes",
        section: Section::Filters,
        env: "FILTER_SCOPES",
        flag: "scopes",
        kind: Kind::List,
        unset: "whole account",
        secret: false,
        command: false,
        doc: "Organizations or projects: `org` (the org and everything in it) or `org/project`. For \
              example `default/payments`.",
    };

    /// `FILTER_RESOURCES`.
    RESOURCES = Setting {
        key: "resources",
        section: Section::Filters,
        env: "FILTER_RESOURCES",
        flag: "resources",
        kind: Kind::List,
        unset: "all",
        secret: false,
        command: false,
        doc: "Resource types, or one resource: `TYPE` or `TYPE:identifier`. For example \
              `PIPELINE:deploy,SECRET`; types checked against Harness's `ResourceType`.",
    };

    /// `FILTER_ENVIRONMENTS`.
    ENVIRONMENTS = Setting {
        key: "environments",
        section: Section::Filters,
        env: "FILTER_ENVIRONMENTS",
        flag: "environments",
        kind: Kind::List,
        unset: "no condition",
        secret: false,
        command: false,
        doc: "Environments: `Production` or `PreProduction`, optionally `:identifier`, or \
              `:identifier` alone.",
    };

    /// `ALLOW_UNKNOWN_VALUES`.
    ALLOW_UNKNOWN_VALUES = Setting {
        key: "allow_unknown_values",
        section: Section::Filters,
        env: "ALLOW_UNKNOWN_VALUES",
        flag: "allow-unknown-values",
        kind: Kind::Bool { default: false },
        unset: NONE,
        secret: false,
        command: true,
        doc: "Accept modules, actions, resource and principal types newer than this release. Harness \
              adds them over time: an unknown value is refused with the list of valid ones unless \
              this is `true` (it must still look like an enum name).",
    };

    /// `SINK`.
    SINK = Setting {
        key: "sink",
        section: Section::Output,
        env: "SINK",
        flag: "sink",
        kind: Kind::Choice {
            choices: &["gcs", "local", "stdout"],
            default: None,
        },
        unset: "gcs if GCS_BUCKET is set, else local",
        secret: false,
        command: false,
        doc: "Where events go. `gcs`: objects in `GCS_BUCKET`, checkpoint and lease beside them; \
              `local`: objects under `OUTPUT_DIR`; `stdout`: NDJSON on stdout for log shippers \
              (summary goes to stderr).",
    };

    /// `OUTPUT_DIR`.
    OUTPUT_DIR = Setting {
        key: "output_dir",
        section: Section::Output,
        env: "OUTPUT_DIR",
        flag: "output-dir",
        kind: Kind::Text {
            default: Some("./harness-audit-data"),
        },
        unset: NONE,
        secret: false,
        command: false,
        doc: "Root of the local store: data objects and the checkpoint. The checkpoint lives here for \
              `SINK=stdout` too.",
    };

    /// `GCS_BUCKET`.
    GCS_BUCKET = Setting {
        key: "gcs_bucket",
        section: Section::Output,
        env: "GCS_BUCKET",
        flag: "gcs-bucket",
        kind: Kind::Text { default: None },
        unset: "none",
        secret: false,
        command: false,
        doc: "Bucket name. A `gs://` prefix is stripped; a path is refused: use `GCS_PREFIX`. Setting \
              it alone selects the GCS sink, as in the recipe.",
    };

    /// `GCS_ENDPOINT`.
    GCS_ENDPOINT = Setting {
        key: "gcs_endpoint",
        section: Section::Output,
        env: "GCS_ENDPOINT",
        flag: "gcs-endpoint",
        kind: Kind::Text {
            default: Some("https://storage.googleapis.com"),
        },
        unset: NONE,
        secret: false,
        command: false,
        doc: "Base URL of the Cloud Storage JSON API, called with the resolved credentials: a Private \
              Service Connect endpoint (`https://storage-NAME.p.googleapis.com`) or a proxy. `http://` \
              only for 127.0.0.1/localhost/[::1]. `STORAGE_EMULATOR_HOST` overrides it, without \
              credentials.",
    };

    /// `GCS_PREFIX`.
    GCS_PREFIX = Setting {
        key: "gcs_prefix",
        section: Section::Output,
        env: "GCS_PREFIX",
        flag: "prefix",
        kind: Kind::Text {
            default: Some("harness/audit"),
        },
        unset: NONE,
        secret: false,
        command: false,
        doc: "Object prefix (bucket or local directory). Point the SIEM feed here, and only here.",
    };

    /// `OUTPUT_SHAPE`.
    OUTPUT_SHAPE = Setting {
        key: "output_shape",
        section: Section::Output,
        env: "OUTPUT_SHAPE",
        flag: "output-shape",
        kind: Kind::Choice {
            choices: &["raw", "streaming"],
            default: Some("raw"),
        },
        unset: NONE,
        secret: false,
        command: true,
        doc: "How each event is written. `raw`: the API's list item byte for byte (the recipe's \
              output). `streaming`: the Harness audit-streaming field names the SecOps parser maps \
              (see Output).",
    };

    /// `ENRICH_YAML_DIFF`.
    ENRICH_YAML_DIFF = Setting {
        key: "enrich_yaml_diff",
        section: Section::Output,
        env: "ENRICH_YAML_DIFF",
        flag: "enrich-yaml-diff",
        kind: Kind::Bool { default: false },
        unset: NONE,
        secret: false,
        command: true,
        doc: "Attach each configuration change's YAML diff. For each CREATE, UPDATE, UPSERT, DELETE, \
              FORCE_DELETE or RESTORE, fetch `GET /audit/api/auditYaml` and add \
              `\"harnessAuditYamlDiff\": {\"oldYaml\", \"newYaml\"}` to the event (in either shape), \
              or `{\"error\": \"...\"}` when the fetch failed after retries: the event is written \
              either way. One request per such event, paced and retried within the same budget as the \
              list.",
    };

    /// `GZIP`.
    GZIP = Setting {
        key: "gzip",
        section: Section::Output,
        env: "GZIP",
        flag: "gzip",
        kind: Kind::Bool { default: false },
        unset: NONE,
        secret: false,
        command: false,
        doc: "Gzip GCS objects (GCS sink only). They are named `.jsonl.gz` and stored with \
              `contentEncoding: gzip`, which SecOps reads.",
    };

    /// `LEASE_SECONDS`.
    LEASE_SECS = Setting {
        key: "lease_secs",
        section: Section::Output,
        env: "LEASE_SECONDS",
        flag: "lease-secs",
        kind: Kind::Number {
            default: 300,
            range: 30..=86_400,
        },
        unset: NONE,
        secret: false,
        command: false,
        doc: "Lifetime of the GCS lease, in seconds. It is renewed every third of it while a run is \
              alive; a crashed holder blocks others at most this long.",
    };

    /// `GCS_RETENTION_DAYS`.
    GCS_RETENTION_DAYS = Setting {
        key: "gcs_retention_days",
        section: Section::Output,
        env: "GCS_RETENTION_DAYS",
        flag: "gcs-retention-days",
        kind: Kind::Number {
            default: 0,
            range: 0..=36_500,
        },
        unset: NONE,
        secret: false,
        command: false,
        doc: "Days of object retention set on each data object and digest as it is uploaded (GCS \
              sink, buckets with Object Retention Lock enabled); 0 sets none. The checkpoint and \
              lease are replaced as they change and never get one.",
    };

    /// `GCS_RETENTION_MODE`.
    GCS_RETENTION_MODE = Setting {
        key: "gcs_retention_mode",
        section: Section::Output,
        env: "GCS_RETENTION_MODE",
        flag: "gcs-retention-mode",
        kind: Kind::Choice {
            choices: &["unlocked", "locked"],
            default: Some("unlocked"),
        },
        unset: NONE,
        secret: false,
        command: false,
        doc: "`locked`: no one, the bucket's owner included, can shorten or remove the retention \
              (write once, read many). `unlocked`: an administrator with \
              `storage.objects.overrideUnlockedRetention` can.",
    };

    /// `SIGNING_KEY_FILE`.
    SIGNING_KEY_FILE = Setting {
        key: "signing_key_file",
        section: Section::Output,
        env: "SIGNING_KEY_FILE",
        flag: "signing-key-file",
        kind: Kind::Text { default: None },
        unset: "digests unsigned",
        secret: false,
        command: false,
        doc: "PKCS#8 PEM Ed25519 private key (`openssl genpkey -algorithm ed25519`) that signs each \
              digest. Without it the digests' hash chain still shows changes, but not who made them \
              (see Evidence).",
    };

    /// `STATE_KEY`.
    STATE_KEY = Setting {
        key: "state_key",
        section: Section::Output,
        env: "STATE_KEY",
        flag: "state-key",
        kind: Kind::Text {
            default: Some("harness-audit-state/checkpoint.json"),
        },
        unset: NONE,
        secret: false,
        command: false,
        doc: "Checkpoint location inside the store. Outside the prefix on purpose: a SIEM feed reading \
              the prefix would ingest it and its delete option would remove it. A key inside the \
              prefix works, with a warning.",
    };

    /// `BATCH_MAX_EVENTS`.
    BATCH_MAX_EVENTS = Setting {
        key: "batch_max_events",
        section: Section::Output,
        env: "BATCH_MAX_EVENTS",
        flag: "batch-max-events",
        kind: Kind::Number {
            default: defaults::BATCH_MAX_EVENTS,
            range: ranges::BATCH_MAX_EVENTS,
        },
        unset: NONE,
        secret: false,
        command: false,
        doc: "Events per object at most, and at least `PAGE_SIZE`. Whole pages are gathered into one \
              batch; it is closed before a page that would take it past this size, and when the pass \
              or a poll ends. The checkpoint is written once per batch, and a crash re-reads at most \
              one batch.",
    };

    /// `MAX_MEMORY_MIB`.
    MAX_MEMORY_MIB = Setting {
        key: "max_memory_mib",
        section: Section::Limits,
        env: "MAX_MEMORY_MIB",
        flag: "max-memory-mib",
        kind: Kind::Number {
            default: 256,
            range: 16..=4096,
        },
        unset: NONE,
        secret: false,
        command: false,
        doc: "Linear-memory ceiling of the component, in MiB. Growing past it stops the run (exit 6) \
              naming this setting.",
    };

    /// `POLL_TIMEOUT_SECS`.
    POLL_TIMEOUT_SECS = Setting {
        key: "poll_timeout_secs",
        section: Section::Limits,
        env: "POLL_TIMEOUT_SECS",
        flag: "poll-timeout-secs",
        kind: Kind::Number {
            default: 900,
            range: 1..=86_400,
        },
        unset: NONE,
        secret: false,
        command: false,
        doc: "Wall-clock limit on each call into the component, waits on HTTP included, in seconds. A \
              call over it is stopped (exit 6) naming this setting. A poll makes at most 20 requests, \
              paced, within the 300 s retry budget: 900 s covers that with room, and a component \
              that never returns holds its concurrency slot no longer than this.",
    };

    /// `MAX_PASS_CPU_SECS`.
    MAX_PASS_CPU_SECS = Setting {
        key: "max_pass_cpu_secs",
        section: Section::Limits,
        env: "MAX_PASS_CPU_SECS",
        flag: "max-pass-cpu-secs",
        kind: Kind::Number {
            default: 300,
            range: 1..=86_400,
        },
        unset: NONE,
        secret: false,
        command: false,
        doc: "CPU time one pass may use, in seconds, counted apart from the wall clock: waits on HTTP \
              cost nothing. A pass over it is stopped (exit 6) naming this setting; its committed \
              progress stands and the next pass continues. A 200,000-event backfill uses about 4 s.",
    };

    /// `MAX_PASS_BATCHES`.
    MAX_PASS_BATCHES = Setting {
        key: "max_pass_batches",
        section: Section::Limits,
        env: "MAX_PASS_BATCHES",
        flag: "max-pass-batches",
        kind: Kind::Number {
            default: 10_000,
            range: 1..=10_000_000,
        },
        unset: NONE,
        secret: false,
        command: false,
        doc: "Batches (objects) one pass may store. The next batch is refused and the pass stops (exit \
              6) naming this setting; what was stored before stays committed. A 200,000-event backfill \
              stores about 200 (at BATCH_MAX_EVENTS 1000).",
    };

    /// `MAX_PASS_MIB`.
    MAX_PASS_MIB = Setting {
        key: "max_pass_mib",
        section: Section::Limits,
        env: "MAX_PASS_MIB",
        flag: "max-pass-mib",
        kind: Kind::Number {
            default: 4096,
            range: 1..=1_048_576,
        },
        unset: NONE,
        secret: false,
        command: false,
        doc: "MiB of NDJSON one pass may store. The batch that would pass it is refused and the pass \
              stops (exit 6) naming this setting. A 200,000-event backfill stores about 120 MiB.",
    };
}
