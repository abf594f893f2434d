//! Which credentials GCS calls are made with: the emulator (anonymous) when
//! `STORAGE_EMULATOR_HOST` is set, otherwise Application Default Credentials
//! in Google's order: `GOOGLE_APPLICATION_CREDENTIALS`, gcloud's well-known
//! file, the metadata server. Each token source is the one its credentials
//! name (a key's `token_uri`, a federation file's `token_url`), so the real
//! Google endpoints are only defaults. Key material never reaches a message: file
//! parse errors report only a line and column.

use std::path::{Path, PathBuf};
use std::time::Duration;

use gcloud_auth::credentials::CredentialsFile;
use gcloud_auth::error::Error as AuthError;
use gcloud_auth::project::{self, Project, ProjectInfo};
use gcloud_auth::token_source::TokenSource;

use super::{GcsError, SCOPE};

const DEFAULT_METADATA_HOST: &str = "169.254.169.254";
const METADATA_PROBE_TIMEOUT: Duration = Duration::from_secs(2);
const SUPPORTED_TYPES: [&str; 3] = ["service_account", "external_account", "authorized_user"];

/// Resolved credentials and the endpoint they are for.
pub struct Credentials {
    endpoint: String,
    principal: String,
    source: String,
    token: Option<Box<dyn TokenSource>>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("endpoint", &self.endpoint)
            .field("principal", &self.principal)
            .field("source", &self.source)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// Resolves credentials for the JSON API at `endpoint` from the
    /// environment, read through `env`.
    pub async fn resolve(
        endpoint: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, GcsError> {
        super::install_crypto_provider();
        let set = |name: &str| env(name).filter(|v| !v.trim().is_empty());
        if let Some(host) = set("STORAGE_EMULATOR_HOST") {
            let endpoint = if host.contains("://") {
                host.clone()
            } else {
                format!("http://{host}")
            };
            return Ok(Self {
                endpoint,
                principal: "anonymous (emulator)".into(),
                source: format!(
                    "the emulator at {host} (STORAGE_EMULATOR_HOST), without credentials"
                ),
                token: None,
            });
        }
        if let Some(path) = set("GOOGLE_APPLICATION_CREDENTIALS") {
            return from_file(endpoint, Path::new(&path), "GOOGLE_APPLICATION_CREDENTIALS").await;
        }
        let well_known = set("HOME").map(|home| {
            PathBuf::from(home).join(".config/gcloud/application_default_credentials.json")
        });
        if let Some(path) = well_known.as_deref().filter(|p| p.is_file()) {
            return from_file(
                endpoint,
                path,
                "gcloud's application default credentials file",
            )
            .await;
        }
        let metadata_host =
            set("GCE_METADATA_HOST").unwrap_or_else(|| DEFAULT_METADATA_HOST.into());
        match probe_metadata(&metadata_host).await {
            Ok(email) => {
                let token = project::create_token_source_from_project(
                    &Project::FromMetadataServer(ProjectInfo { project_id: None }),
                    project::Config::default().with_scopes(&[SCOPE]),
                )
                .await
                .map_err(|e| {
                    GcsError::Credentials(format!(
                        "the metadata server at {metadata_host} gave no access token for {email}: {}",
                        safe(&e)
                    ))
                })?;
                Ok(Self {
                    endpoint: endpoint.into(),
                    principal: email.clone(),
                    source: format!(
                        "the metadata server at {metadata_host}, service account {email}"
                    ),
                    token: Some(token),
                })
            }
            Err(why) => Err(GcsError::NoCredentials(format!(
                "GOOGLE_APPLICATION_CREDENTIALS is not set; {}; the metadata server at {metadata_host} {why}",
                well_known.map_or_else(
                    || "HOME is not set, so gcloud's credentials file was not looked for"
                        .to_owned(),
                    |p| format!("{} does not exist", p.display())
                ),
            ))),
        }
    }

    /// The API endpoint these credentials are for.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Who requests are made as, for messages (an e-mail, never a secret).
    pub fn principal(&self) -> &str {
        &self.principal
    }

    /// Where the credentials came from, for the start-up log line.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The `Authorization` header value, refreshed when it expires; `None` for the emulator.
    pub(super) async fn authorization(&self) -> Result<Option<String>, GcsError> {
        let Some(source) = &self.token else {
            return Ok(None);
        };
        let token = source.token().await.map_err(|e| {
            GcsError::Credentials(format!(
                "refreshing the access token of {} failed: {}",
                self.principal,
                safe(&e)
            ))
        })?;
        Ok(Some(token.value()))
    }
}

async fn from_file(endpoint: &str, path: &Path, named_by: &str) -> Result<Credentials, GcsError> {
    let shown = path.display();
    let unusable =
        |why: String| GcsError::Credentials(format!("{named_by} names {shown}, which {why}"));
    let text = tokio::fs::read_to_string(path)
        .await
        .map_err(|e| unusable(format!("cannot be read ({})", e.kind())))?;
    let file: CredentialsFile = serde_json::from_str(&text).map_err(|e| {
        unusable(format!(
            "is not a Google credentials JSON file (problem at line {}, column {}); expected a service-account \
             key or a workload identity federation configuration",
            e.line(),
            e.column()
        ))
    })?;
    if !SUPPORTED_TYPES.contains(&file.tp.as_str()) {
        return Err(unusable(format!(
            "has type `{}`; supported types are {}",
            file.tp.chars().take(40).collect::<String>(),
            SUPPORTED_TYPES.join(", ")
        )));
    }
    let principal = file
        .client_email
        .clone()
        .or_else(|| {
            file.service_account_impersonation_url
                .as_deref()
                .and_then(|u| u.rsplit('/').next())
                .map(|s| s.trim_end_matches(":generateAccessToken").to_owned())
        })
        .unwrap_or_else(|| format!("the {} in {shown}", file.tp));
    let token = project::create_token_source_from_credentials(
        &file,
        &project::Config::default().with_scopes(&[SCOPE]),
    )
    .await
    .map_err(|e| unusable(format!("gave no access token: {}", safe(&e))))?;
    Ok(Credentials {
        endpoint: endpoint.into(),
        source: format!("{named_by} ({shown}), {principal}"),
        principal,
        token: Some(token),
    })
}

/// The default service account's e-mail, if a metadata server answers.
async fn probe_metadata(host: &str) -> Result<String, String> {
    let client = reqwest::Client::builder()
        .timeout(METADATA_PROBE_TIMEOUT)
        .build()
        .map_err(|e| e.to_string())?;
    let response = client
        .get(format!(
            "http://{host}/computeMetadata/v1/instance/service-accounts/default/email"
        ))
        .header("Metadata-Flavor", "Google")
        .send()
        .await
        .map_err(|_| "did not answer (not on Cloud Run, GKE or GCE)".to_owned())?;
    if !response.status().is_success() {
        return Err(format!(
            "has no default service account (HTTP {})",
            response.status()
        ));
    }
    let email = response.text().await.map_err(|e| e.to_string())?;
    Ok(email.trim().to_owned())
}

/// An auth error as text, without anything that could quote key material:
/// JSON errors can quote the value they failed on, so only their position is kept.
fn safe(e: &AuthError) -> String {
    match e {
        AuthError::JsonError(j) => {
            format!("malformed JSON (line {}, column {})", j.line(), j.column())
        }
        AuthError::JwtError(_) | AuthError::NoPrivateKeyFound => {
            "the private_key is not a valid PEM-encoded RSA private key".into()
        }
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const GOOGLE: &str = "https://storage.googleapis.com";

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| vars.get(name).cloned()
    }

    #[tokio::test]
    async fn the_emulator_needs_no_credentials() {
        let c = Credentials::resolve(GOOGLE, env(&[("STORAGE_EMULATOR_HOST", "127.0.0.1:4443")]))
            .await
            .unwrap();
        assert_eq!(c.endpoint(), "http://127.0.0.1:4443");
        assert_eq!(c.authorization().await.unwrap(), None);
    }

    #[tokio::test]
    async fn nothing_found_names_every_place_looked() {
        let home = tempfile::tempdir().unwrap();
        let err = Credentials::resolve(
            GOOGLE,
            env(&[
                ("HOME", home.path().to_str().unwrap()),
                ("GCE_METADATA_HOST", "127.0.0.1:9"),
            ]),
        )
        .await
        .unwrap_err()
        .to_string();
        for part in [
            "no Google credentials found",
            "GOOGLE_APPLICATION_CREDENTIALS is not set",
            "application_default_credentials.json does not exist",
            "metadata server at 127.0.0.1:9 did not answer",
            "roles/storage.objectUser",
        ] {
            assert!(err.contains(part), "{part}: {err}");
        }
    }

    #[tokio::test]
    async fn a_bad_key_file_is_named_and_never_quoted() {
        let dir = tempfile::tempdir().unwrap();
        let cases = [
            (
                r#"{"type":"service_account","client_email":"a@b.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----\nSECRETMATERIAL\n-----END PRIVATE KEY-----\n","token_uri":"http://127.0.0.1:9/token"}"#,
                "not a valid PEM-encoded RSA private key",
            ),
            (
                r#"{"type":"service_account","private_key": SECRETMATERIAL}"#,
                "line 1, column",
            ),
            (
                r#"{"type":"impersonated_service_account"}"#,
                "has type `impersonated_service_account`; supported types are",
            ),
            (
                r#"{"type":"service_account","delegates":"SECRETMATERIAL"}"#,
                "line 1, column",
            ),
        ];
        for (i, (content, expected)) in cases.into_iter().enumerate() {
            let path = dir.path().join(format!("key{i}.json"));
            std::fs::write(&path, content).unwrap();
            let err = Credentials::resolve(
                GOOGLE,
                env(&[("GOOGLE_APPLICATION_CREDENTIALS", path.to_str().unwrap())]),
            )
            .await
            .unwrap_err()
            .to_string();
            assert!(err.contains(expected), "{expected}: {err}");
            assert!(err.contains(path.to_str().unwrap()), "{err}");
            assert!(!err.contains("SECRETMATERIAL"), "{err}");
        }
        let missing = dir.path().join("absent.json");
        let err = Credentials::resolve(
            GOOGLE,
            env(&[("GOOGLE_APPLICATION_CREDENTIALS", missing.to_str().unwrap())]),
        )
        .await
        .unwrap_err()
        .to_string();
        assert!(err.contains("cannot be read (entity not found)"), "{err}");
    }
}
