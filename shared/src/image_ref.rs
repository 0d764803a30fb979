//! Image references, compared the way the engine resolves them: `nginx`, `nginx:latest` and
//! `docker.io/library/nginx:latest` name one image, so a container recreated from any of them is not
//! `changed`. Pure string rules (the engine's `reference` package), no lookups.

/// The registry the engine assumes when a reference names none.
const DEFAULT_DOMAIN: &str = "docker.io";

/// `reference` written out in full: registry, repository (with `library/` for official images on Docker
/// Hub), and tag (`latest` unless a tag or digest is given). An image id (`sha256:…`, or 64 hex digits) is
/// kept as `sha256:<hex>`. Text that is not a reference is returned trimmed, so it equals only itself.
pub fn normalized_reference(reference: &str) -> String {
    let reference = reference.trim();
    if let Some(id) = image_id(reference) {
        return id;
    }
    let (name, digest) = match reference.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (reference, None),
    };
    // A tag follows the last `:` after the last `/`; a `:` before it is a registry's port.
    let last_part = name.rfind('/').map_or(0, |slash| slash + 1);
    let (repository, tag) = match name[last_part..].rfind(':') {
        Some(colon) => (
            &name[..last_part + colon],
            Some(&name[last_part + colon + 1..]),
        ),
        None => (name, None),
    };
    if repository.is_empty() {
        return reference.to_owned();
    }
    let (domain, path) = match repository.split_once('/') {
        Some((first, rest)) if is_domain(first) => (first, rest.to_owned()),
        _ => (DEFAULT_DOMAIN, repository.to_owned()),
    };
    let domain = if domain == "index.docker.io" {
        DEFAULT_DOMAIN
    } else {
        domain
    };
    let path = if domain == DEFAULT_DOMAIN && !path.contains('/') {
        format!("library/{path}")
    } else {
        path
    };
    let mut full = format!("{domain}/{path}");
    match (tag, digest) {
        (Some(tag), _) => {
            full.push(':');
            full.push_str(tag);
        }
        (None, None) => full.push_str(":latest"),
        (None, Some(_)) => {}
    }
    if let Some(digest) = digest {
        full.push('@');
        full.push_str(digest);
    }
    full
}

/// Whether two references name the same image once both are written out in full. Two equal strings do
/// without writing anything out: that is nearly every member of a host, compared on every drift.
pub fn same_reference(a: &str, b: &str) -> bool {
    a == b || normalized_reference(a) == normalized_reference(b)
}

/// Whether `reference` is the image id `image_id` itself (`sha256:<hex>`, bare hex, or a prefix of at least
/// 12 digits, as the engine accepts it): what a container recreated from the id, its tag gone, is created
/// from.
pub fn is_image_id_of(reference: &str, image_id: &str) -> bool {
    let wanted = image_id.trim().trim_start_matches("sha256:");
    let given = reference.trim().trim_start_matches("sha256:");
    given.len() >= 12
        && given.len() <= wanted.len()
        && is_hex(given)
        && wanted.starts_with(&given.to_ascii_lowercase())
}

/// Whether `reference` is an image id rather than a name (`sha256:…`, or 12 to 64 hex digits, as the engine
/// takes an id): it names one image for good, so it can never go stale.
pub fn is_image_id(reference: &str) -> bool {
    let reference = reference.trim();
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    reference.starts_with("sha256:") || ((12..=64).contains(&hex.len()) && is_hex(hex))
}

/// `sha256:<hex>` for an image id in either of the engine's spellings, else `None`.
fn image_id(reference: &str) -> Option<String> {
    let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
    (hex.len() == 64 && is_hex(hex)).then(|| format!("sha256:{}", hex.to_ascii_lowercase()))
}

fn is_hex(text: &str) -> bool {
    !text.is_empty() && text.chars().all(|c| c.is_ascii_hexdigit())
}

/// The engine's rule: the first part of a name is a registry when it has a `.` or a `:`, or is `localhost`.
fn is_domain(first: &str) -> bool {
    first.contains('.') || first.contains(':') || first == "localhost"
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "sha256:4c1f9ad0f2e5e0d3b3c5c7f1e0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3";

    #[test]
    fn official_images_on_docker_hub_in_every_spelling() {
        for spelling in [
            "nginx",
            "nginx:latest",
            "library/nginx",
            "docker.io/nginx",
            "docker.io/library/nginx:latest",
            "index.docker.io/library/nginx",
            " nginx ",
        ] {
            assert_eq!(
                normalized_reference(spelling),
                "docker.io/library/nginx:latest",
                "{spelling}"
            );
        }
        assert!(same_reference("nginx", "docker.io/library/nginx:latest"));
        assert!(!same_reference("nginx", "nginx:1.27"));
        assert!(!same_reference("nginx", "nginxinc/nginx"));
    }

    #[test]
    fn registries_ports_tags_and_digests() {
        assert_eq!(
            normalized_reference("dockstate-test/busybox"),
            "docker.io/dockstate-test/busybox:latest"
        );
        assert_eq!(
            normalized_reference("localhost:5000/app"),
            "localhost:5000/app:latest"
        );
        assert_eq!(normalized_reference("localhost/app:2"), "localhost/app:2");
        assert_eq!(
            normalized_reference("ghcr.io/org/app:1.2"),
            "ghcr.io/org/app:1.2"
        );
        assert_eq!(
            normalized_reference("nginx@sha256:abc"),
            "docker.io/library/nginx@sha256:abc",
            "a digest alone implies no tag"
        );
        assert_eq!(
            normalized_reference("nginx:1.27@sha256:abc"),
            "docker.io/library/nginx:1.27@sha256:abc"
        );
        assert!(!same_reference("registry.local/nginx", "nginx"));
    }

    #[test]
    fn ids_are_told_from_names() {
        assert!(is_image_id(&format!("sha256:{}", "a".repeat(64))));
        assert!(is_image_id("0123456789ab"));
        assert!(!is_image_id("busybox:latest"));
        assert!(!is_image_id("registry:5000/app"));
        assert!(!is_image_id("abc"));
    }

    #[test]
    fn image_ids_are_kept_as_ids() {
        assert_eq!(normalized_reference(ID), ID);
        assert_eq!(normalized_reference(&ID[7..]), ID, "bare hex is an id too");
        assert!(is_image_id_of(ID, ID));
        assert!(is_image_id_of(&ID[7..19], ID), "a 12-digit prefix");
        assert!(!is_image_id_of(&ID[7..15], ID), "too short to be sure");
        assert!(!is_image_id_of("busybox:latest", ID));
        assert!(!is_image_id_of(ID, "sha256:ffff"));
    }

    #[test]
    fn text_that_is_no_reference_equals_only_itself() {
        assert_eq!(normalized_reference(""), "");
        assert_eq!(normalized_reference(":x"), ":x");
    }
}
