//! Credentials files in the `~/.aws/credentials` ini format: `[profile]` sections of
//! `key = value` lines. nimbus writes `DIR/credentials` on first start; the CLI reads it.

use std::collections::BTreeMap;
use std::path::Path;

use crate::IamError;

/// One profile of a credentials file.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Profile {
    pub aws_access_key_id: String,
    pub aws_secret_access_key: String,
    /// Region to sign for, when the file names one.
    pub region: Option<String>,
    /// The nimbus endpoint the key belongs to, when the file names one.
    pub endpoint_url: Option<String>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("aws_access_key_id", &self.aws_access_key_id)
            .field("aws_secret_access_key", &"***")
            .field("region", &self.region)
            .field("endpoint_url", &self.endpoint_url)
            .finish()
    }
}

/// Parses ini text into profiles by name. Unknown keys are ignored, as the AWS tools do.
pub fn parse(text: &str) -> BTreeMap<String, Profile> {
    let mut out: BTreeMap<String, Profile> = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim().strip_prefix("profile ").unwrap_or(name.trim()).to_string();
            out.entry(name.clone()).or_default();
            current = Some(name);
            continue;
        }
        let (Some(section), Some((k, v))) = (&current, line.split_once('=')) else { continue };
        let p = out.entry(section.clone()).or_default();
        let v = v.trim().to_string();
        match k.trim() {
            "aws_access_key_id" => p.aws_access_key_id = v,
            "aws_secret_access_key" => p.aws_secret_access_key = v,
            "region" => p.region = Some(v),
            "endpoint_url" => p.endpoint_url = Some(v),
            _ => {}
        }
    }
    out
}

/// Reads one profile from a file.
pub fn read(path: &Path, profile: &str) -> Result<Option<Profile>, IamError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(parse(&text).remove(profile)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(IamError::Io { path: path.display().to_string(), source }),
    }
}

/// Writes a single `[default]` profile, mode 0600.
pub fn write(path: &Path, p: &Profile) -> Result<(), IamError> {
    let mut text = format!(
        "# Written by nimbus on first start: the admin access key of this data directory.\n[default]\naws_access_key_id = {}\naws_secret_access_key = {}\n",
        p.aws_access_key_id, p.aws_secret_access_key
    );
    if let Some(r) = &p.region {
        text.push_str(&format!("region = {r}\n"));
    }
    if let Some(e) = &p.endpoint_url {
        text.push_str(&format!("endpoint_url = {e}\n"));
    }
    crate::crypto::write_private(path, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_a_secret() {
        let profile = Profile {
            aws_access_key_id: "AKIDEXAMPLE".into(),
            aws_secret_access_key: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            ..Profile::default()
        };
        let signer = crate::sigv4::Signer {
            access_key_id: "AKIDEXAMPLE".into(),
            secret: "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY".into(),
            region: "us-east-1".into(),
            service: "nimbus".into(),
        };
        for text in [format!("{profile:?}"), format!("{signer:?}"), format!("{signer:#?}")] {
            assert!(text.contains("AKIDEXAMPLE"), "{text}");
            assert!(!text.contains("wJalrXUtnFEMI"), "a secret in Debug output: {text}");
        }
    }

    #[test]
    fn reads_what_it_writes_and_aws_style_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        let p = Profile {
            aws_access_key_id: "AKIAX".into(),
            aws_secret_access_key: "s".into(),
            region: Some("eu-west-3".into()),
            endpoint_url: None,
        };
        write(&path, &p).unwrap();
        assert_eq!(read(&path, "default").unwrap(), Some(p));
        let parsed = parse("[profile dev]\naws_access_key_id=A\naws_secret_access_key = B\nother = x\n");
        assert_eq!(parsed["dev"].aws_secret_access_key, "B");
    }
}
