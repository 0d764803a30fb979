//! The bearer-token file both programs read (`--token-file`): trimmed, and never empty.

use std::path::Path;

use super::secret::Secret;

/// A bearer token file that cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    #[error("cannot read the token file {path}: {source}")]
    Unreadable {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the token file {path} is empty: {hint}")]
    Empty { path: String, hint: &'static str },
}

/// The token in `path`, trimmed of surrounding whitespace (a trailing newline is the usual). An empty file is
/// an error whose message ends with `empty_hint`, which says what belongs in it.
pub fn read_token_file(path: &Path, empty_hint: &'static str) -> Result<Secret, TokenFileError> {
    let path_text = || path.display().to_string();
    let raw = std::fs::read_to_string(path).map_err(|source| TokenFileError::Unreadable {
        path: path_text(),
        source,
    })?;
    let token = raw.trim();
    if token.is_empty() {
        return Err(TokenFileError::Empty {
            path: path_text(),
            hint: empty_hint,
        });
    }
    Ok(Secret::from(token))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_is_read_trimmed_and_never_empty() {
        let dir = std::env::temp_dir().join(format!("dockstate-token-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("creates a directory");
        let path = dir.join("token");
        std::fs::write(&path, "s3cret\n").expect("write");
        assert_eq!(
            read_token_file(&path, "hint").expect("token").expose(),
            "s3cret"
        );
        std::fs::write(&path, "  \n").expect("write");
        let err = read_token_file(&path, "put the secret in it").expect_err("empty");
        assert!(
            err.to_string().ends_with("is empty: put the secret in it"),
            "{err}"
        );
        let err = read_token_file(&dir.join("missing"), "hint").expect_err("missing");
        assert!(err.to_string().contains("missing"), "{err}");
        std::fs::remove_dir_all(&dir).expect("removes the directory");
    }
}
