//! The list filters Harness accepts, parsed from their text form and checked
//! against the values the API knows. Harness adds values over time, so an
//! unknown one is refused with the valid list unless the user allows unknown
//! values (it must still look like an enum name).

use crate::vocabulary::{ACTIONS, ENVIRONMENT_TYPES, MODULES, PRINCIPAL_TYPES, RESOURCE_TYPES};

use super::{EnvironmentFilter, PrincipalFilter, ResourceFilter, ScopeFilter};

fn enum_shaped(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

fn identifier(v: &str) -> bool {
    !v.is_empty()
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// Checks `value` (already in its canonical case) against `known`.
fn known(value: &str, known: &[&str], what: &str, allow_unknown: bool) -> Result<String, String> {
    if known.contains(&value) || (allow_unknown && enum_shaped(value)) {
        return Ok(value.to_owned());
    }
    let hint = if enum_shaped(value) {
        " (a value newer than this release is accepted with ALLOW_UNKNOWN_VALUES=true or --allow-unknown-values)"
    } else {
        ""
    };
    Err(format!(
        "`{value}` is not a Harness {what}; valid: {}{hint}",
        known.join(", ")
    ))
}

/// `modules`: case-insensitive.
pub fn module(text: &str, allow_unknown: bool) -> Result<String, String> {
    known(
        &text.trim().to_ascii_uppercase(),
        MODULES,
        "module",
        allow_unknown,
    )
}

/// `actions`: upper-case, as the API is case-sensitive here.
pub fn action(text: &str, allow_unknown: bool) -> Result<String, String> {
    let text = text.trim();
    if text != text.to_ascii_uppercase() && ACTIONS.contains(&text.to_ascii_uppercase().as_str()) {
        return Err(format!(
            "`{text}`: actions are upper-case in the API; write {}",
            text.to_ascii_uppercase()
        ));
    }
    known(text, ACTIONS, "action", allow_unknown)
}

/// `TYPE:identifier` (the e-mail for `USER`); `SYSTEM` alone means the system principal.
pub fn principal(text: &str, allow_unknown: bool) -> Result<PrincipalFilter, String> {
    let text = text.trim();
    let (kind, id) = match text.split_once(':') {
        Some((kind, id)) => (kind.trim().to_ascii_uppercase(), id.trim()),
        None if text.eq_ignore_ascii_case("SYSTEM") => ("SYSTEM".to_owned(), "SYSTEM"),
        None => {
            return Err(format!(
                "`{text}` is not a principal: write TYPE:identifier, e.g. USER:alice@example.com, \
                 SERVICE_ACCOUNT:ci_bot, API_KEY:deploy_key or SYSTEM"
            ));
        }
    };
    let kind = known(&kind, PRINCIPAL_TYPES, "principal type", allow_unknown)?;
    if id.is_empty() {
        return Err(format!("`{text}` has no identifier after the type"));
    }
    Ok(PrincipalFilter {
        kind,
        identifier: id.to_owned(),
    })
}

/// `org` or `org/project`.
pub fn scope(text: &str) -> Result<ScopeFilter, String> {
    let text = text.trim();
    let (org, project) = match text.split_once('/') {
        Some((org, project)) => (org, Some(project)),
        None => (text, None),
    };
    if !identifier(org) || project.is_some_and(|p| !identifier(p)) {
        return Err(format!(
            "`{text}` is not a scope: write an organization identifier, or org/project, e.g. default/payments"
        ));
    }
    Ok(ScopeFilter {
        org: org.to_owned(),
        project: project.map(str::to_owned),
    })
}

/// `TYPE` or `TYPE:identifier`.
pub fn resource(text: &str, allow_unknown: bool) -> Result<ResourceFilter, String> {
    let text = text.trim();
    let (kind, id) = match text.split_once(':') {
        Some((kind, id)) if !id.trim().is_empty() => (kind, Some(id.trim().to_owned())),
        Some(_) => return Err(format!("`{text}` has an empty identifier after the type")),
        None => (text, None),
    };
    Ok(ResourceFilter {
        kind: known(
            &kind.trim().to_ascii_uppercase(),
            RESOURCE_TYPES,
            "resource type",
            allow_unknown,
        )?,
        identifier: id,
    })
}

/// `Production`, `PreProduction`, either with `:identifier`, or `:identifier` alone.
pub fn environment(text: &str) -> Result<EnvironmentFilter, String> {
    let text = text.trim();
    let (kind, id) = match text.split_once(':') {
        Some((kind, id)) => (kind.trim(), Some(id.trim()).filter(|i| !i.is_empty())),
        None => (text, None),
    };
    let kind = match kind {
        "" => None,
        k => Some(
            ENVIRONMENT_TYPES
                .iter()
                .find(|t| t.eq_ignore_ascii_case(k))
                .map(|t| (*t).to_owned())
                .ok_or_else(|| {
                    format!(
                        "`{text}` is not an environment: write Production, PreProduction, either followed \
                         by :identifier, or :identifier alone"
                    )
                })?,
        ),
    };
    if kind.is_none() && id.is_none() {
        return Err(format!(
            "`{text}` names neither an environment type nor an identifier"
        ));
    }
    Ok(EnvironmentFilter {
        kind,
        identifier: id.map(str::to_owned),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_forms_parse_to_the_api_values() {
        assert_eq!(module(" pms ", false).unwrap(), "PMS");
        assert_eq!(action("LOGIN2FA", false).unwrap(), "LOGIN2FA");
        assert_eq!(
            principal("user:alice@example.com", false).unwrap(),
            PrincipalFilter {
                kind: "USER".into(),
                identifier: "alice@example.com".into()
            }
        );
        assert_eq!(principal("SYSTEM", false).unwrap().identifier, "SYSTEM");
        assert_eq!(
            scope("default/payments").unwrap(),
            ScopeFilter {
                org: "default".into(),
                project: Some("payments".into())
            }
        );
        assert_eq!(scope("default").unwrap().project, None);
        assert_eq!(
            resource("pipeline:deploy", false).unwrap(),
            ResourceFilter {
                kind: "PIPELINE".into(),
                identifier: Some("deploy".into())
            }
        );
        assert_eq!(
            environment("production").unwrap().kind.as_deref(),
            Some("Production")
        );
        assert_eq!(
            environment(":prod-eu").unwrap(),
            EnvironmentFilter {
                kind: None,
                identifier: Some("prod-eu".into())
            }
        );
    }

    #[test]
    fn unknown_values_list_the_valid_ones_unless_allowed() {
        let err = module("NEWTHING", false).unwrap_err();
        assert!(
            err.contains("not a Harness module; valid: CD, CI,")
                && err.contains("--allow-unknown-values"),
            "{err}"
        );
        assert_eq!(module("NEWTHING", true).unwrap(), "NEWTHING");
        assert!(module("new thing", true).is_err(), "still enum-shaped");
        let err = action("create", false).unwrap_err();
        assert!(
            err.contains("actions are upper-case in the API; write CREATE"),
            "{err}"
        );
        assert!(
            action("CREATE_WIDGET", false)
                .unwrap_err()
                .contains("valid: CREATE, UPDATE")
        );
        assert_eq!(action("CREATE_WIDGET", true).unwrap(), "CREATE_WIDGET");
        assert!(
            principal("alice@example.com", false)
                .unwrap_err()
                .contains("TYPE:identifier")
        );
        assert!(
            principal("ROBOT:x", false)
                .unwrap_err()
                .contains("valid: USER, SERVICE_ACCOUNT")
        );
        assert!(
            principal("USER:", false)
                .unwrap_err()
                .contains("no identifier")
        );
        assert!(scope("a/b/c").unwrap_err().contains("org/project"));
        assert!(
            resource("WIDGET", false)
                .unwrap_err()
                .contains("not a Harness resource type")
        );
        assert_eq!(resource("WIDGET", true).unwrap().kind, "WIDGET");
        assert!(
            environment("Staging")
                .unwrap_err()
                .contains("Production, PreProduction")
        );
        assert!(environment(":").unwrap_err().contains("neither"));
    }
}
