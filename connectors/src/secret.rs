//! Reading a secret (a bot token, an SMTP password) where the policy says it is: a file,
//! trimmed, or an environment variable. Read at every send, so a rotated secret is used
//! without a reload; never logged, never part of an error.

use atalaya_bus::delivery::integration::SecretSource;

/// Why a secret could not be read. Says where it was looked for, never what it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read the secret from the {source_name}: {reason}")]
pub struct SecretError {
    /// `file /run/secrets/bot` or `environment variable BOT_TOKEN`.
    pub source_name: String,
    pub reason: String,
}

/// The secret, trimmed; an empty one is an error.
pub async fn read_secret(source: &SecretSource) -> Result<String, SecretError> {
    let fail = |reason: String| SecretError {
        source_name: source.to_string(),
        reason,
    };
    let text = match source {
        SecretSource::File(path) => tokio::fs::read_to_string(path)
            .await
            .map_err(|e| fail(e.kind().to_string()))?,
        SecretSource::Env(name) => std::env::var(name).map_err(|e| fail(e.to_string()))?,
    };
    let secret = text.trim();
    if secret.is_empty() {
        return Err(fail("it is empty".to_owned()));
    }
    Ok(secret.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn files_are_trimmed_and_errors_say_where_not_what() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "  123456:FAKE-token\n").unwrap();
        let source = SecretSource::File(path.clone());
        assert_eq!(read_secret(&source).await.unwrap(), "123456:FAKE-token");
        std::fs::write(&path, "\n").unwrap();
        let empty = read_secret(&source).await.unwrap_err();
        assert_eq!(
            empty.to_string(),
            format!(
                "cannot read the secret from the file {}: it is empty",
                path.display()
            )
        );
        let missing = read_secret(&SecretSource::File(dir.path().join("nope")))
            .await
            .unwrap_err();
        assert!(missing.reason.contains("not found"), "{missing}");
        let unset = read_secret(&SecretSource::Env("ATALAYA_TEST_UNSET_SECRET".into()))
            .await
            .unwrap_err();
        assert_eq!(
            unset.source_name,
            "environment variable ATALAYA_TEST_UNSET_SECRET"
        );
    }
}
