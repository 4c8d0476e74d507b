//! Kubernetes' own rules for object names, checked before a name is used anywhere (in
//! findings, patch file names, printed `kubectl` commands): namespaces are DNS-1123 labels,
//! workload names DNS-1123 subdomains, as the API server and kubectl validate them.

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters: a namespace.
pub fn check_label(name: &str) -> Result<(), String> {
    if name.len() > 63 {
        return Err(format!("is {} characters long; at most 63", name.len()));
    }
    if is_label(name) {
        Ok(())
    } else {
        Err(RULE_LABEL.into())
    }
}

/// Labels of [`check_label`]'s form joined by `.`, at most 253 characters: a workload name.
pub fn check_subdomain(name: &str) -> Result<(), String> {
    if name.len() > 253 {
        return Err(format!("is {} characters long; at most 253", name.len()));
    }
    if name.split('.').all(is_label) {
        Ok(())
    } else {
        Err(RULE_SUBDOMAIN.into())
    }
}

const RULE_LABEL: &str =
    "must be lowercase letters, digits and '-', starting and ending with a letter or digit";
const RULE_SUBDOMAIN: &str = "must be lowercase letters, digits, '-' and '.', each '.'-separated part starting and ending with a letter or digit";

fn is_label(s: &str) -> bool {
    let ok = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(ok)
        && s.ends_with(ok)
        && s.chars().all(|c| ok(c) || c == '-')
}

/// A name as it may be shown in an error: control characters (terminal escapes among them)
/// escaped, quoted.
pub fn shown(name: &str) -> String {
    format!("\"{}\"", name.escape_debug())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_kubernetes_rules() {
        for ok in ["api", "eu-api", "a", "x1", &"a".repeat(63)] {
            assert!(check_label(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Api",
            "-api",
            "api-",
            "a.b",
            "a_b",
            "a/b",
            &"a".repeat(64),
        ] {
            assert!(check_label(bad).is_err(), "{bad}");
        }
        for ok in ["api", "api.v1", "my-app.prod.svc"] {
            assert!(check_subdomain(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".",
            "api.",
            "..",
            "../../etc/x",
            "a b",
            "api\u{1b}[2J",
            "API",
        ] {
            assert!(check_subdomain(bad).is_err(), "{bad}");
        }
        assert_eq!(shown("a\u{1b}[2J\n"), "\"a\\u{1b}[2J\\n\"");
    }
}
