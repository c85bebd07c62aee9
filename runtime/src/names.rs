//! The naming rules every omnicast crate shares, in one place: wire names to Rust identifiers
//! (codegen and the derive), the event-name syntax (validation and the derive), schema file
//! stems (codegen and `omnicast gen`), and the did-you-mean suggestion (catalog diagnostics and
//! the publish API). They live in the runtime's base layer because every other crate depends on
//! it, and it depends on none of them.

/// `order:status_changed` -> `OrderStatusChangedPayload`.
pub fn payload_struct(event: &str) -> String {
    format!("{}Payload", pascal(&event.replace(':', "_")))
}

/// `order:status_changed` -> `order_status_changed`.
pub fn emitter_method(event: &str) -> String {
    event.replace(':', "_")
}

/// `order:status_changed` -> `orderStatusChanged` (the TypeScript publisher's default emitter).
pub fn ts_emitter(event: &str) -> String {
    serde_camel(&event.replace(':', "_"))
}

/// A lowerCamelCase identifier (`inventoryAlert`, `emitOrderEvent`): ASCII letters and digits,
/// starting with a lowercase letter. Names the TypeScript publisher's emitters and helpers.
pub fn is_lower_camel(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_alphanumeric())
}

/// `order:created` -> `order.created` (schema file stem: unique, portable).
pub fn schema_stem(event: &str) -> String {
    event.replace(':', ".")
}

/// `customerId` -> `customer_id`; `URLPath` -> `url_path`.
pub fn snake(name: &str) -> String {
    let chars: Vec<char> = name.chars().collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        if c == '_' || c == '-' || c == ' ' {
            if !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            continue;
        }
        if c.is_uppercase() {
            let prev_lower =
                i > 0 && (chars[i - 1].is_lowercase() || chars[i - 1].is_ascii_digit());
            let next_lower = chars.get(i + 1).is_some_and(|n| n.is_lowercase());
            let prev_upper = i > 0 && chars[i - 1].is_uppercase();
            if !out.is_empty() && !out.ends_with('_') && (prev_lower || (prev_upper && next_lower))
            {
                out.push('_');
            }
            out.extend(c.to_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// `cart_add` / `cartAdd` -> `CartAdd`.
pub fn pascal(name: &str) -> String {
    snake(name)
        .split('_')
        .filter(|part| !part.is_empty())
        .map(|part| {
            let mut chars = part.chars();
            let first = chars.next().expect("parts are non-empty");
            first.to_uppercase().chain(chars).collect::<String>()
        })
        .collect()
}

/// serde's `camelCase` rule, applied to a snake_case Rust field name.
pub fn serde_camel(snake: &str) -> String {
    let mut out = String::with_capacity(snake.len());
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// A lowercase snake_case word: `orders`, `status_changed` (no leading digit or underscore, no
/// double or trailing underscore). Roles, namespaces and both halves of event names.
pub fn is_snake(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && !name.ends_with('_')
        && !name.contains("__")
}

/// An event name: `namespace:action`, both snake_case (`order:status_changed`).
pub fn is_event_name(name: &str) -> bool {
    matches!(name.split_once(':'), Some((prefix, action)) if is_snake(prefix) && is_snake(action))
}

/// The candidate closest to `input`, when one is close enough to be a likely typo (Jaro-Winkler
/// over lowercased text above 0.8).
pub fn closest<'c>(input: &str, candidates: impl IntoIterator<Item = &'c str>) -> Option<&'c str> {
    let input = input.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::jaro_winkler(&input, &c.to_lowercase()), c))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| c)
}

/// Whether `name` is a Rust keyword (strict or reserved) that needs `r#` as an identifier.
pub fn is_keyword(name: &str) -> bool {
    matches!(
        name,
        "as" | "async"
            | "await"
            | "break"
            | "const"
            | "continue"
            | "crate"
            | "dyn"
            | "else"
            | "enum"
            | "extern"
            | "false"
            | "fn"
            | "for"
            | "gen"
            | "if"
            | "impl"
            | "in"
            | "let"
            | "loop"
            | "match"
            | "mod"
            | "move"
            | "mut"
            | "pub"
            | "ref"
            | "return"
            | "self"
            | "Self"
            | "static"
            | "struct"
            | "super"
            | "trait"
            | "true"
            | "type"
            | "unsafe"
            | "use"
            | "where"
            | "while"
            | "abstract"
            | "become"
            | "box"
            | "do"
            | "final"
            | "macro"
            | "override"
            | "priv"
            | "try"
            | "typeof"
            | "unsized"
            | "virtual"
            | "yield"
    )
}

/// Keywords that cannot be raw identifiers at all.
pub fn is_unrawable(name: &str) -> bool {
    matches!(name, "self" | "Self" | "super" | "crate" | "_")
}

/// Whether `name` is a valid Rust identifier once `r#` is added where needed.
pub fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name != "_"
        && !is_unrawable(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_rules() {
        assert_eq!(snake("customerId"), "customer_id");
        assert_eq!(snake("URLPath"), "url_path");
        assert_eq!(snake("targetRoles"), "target_roles");
        assert_eq!(snake("sku"), "sku");
        assert_eq!(snake("oldStock2"), "old_stock2");
        assert_eq!(pascal("cart_add"), "CartAdd");
        assert_eq!(pascal("checkout_complete"), "CheckoutComplete");
        assert_eq!(pascal("admin"), "Admin");
        assert_eq!(serde_camel("customer_id"), "customerId");
        assert_eq!(
            payload_struct("order:status_changed"),
            "OrderStatusChangedPayload"
        );
        assert_eq!(
            emitter_method("customer:added_to_cart"),
            "customer_added_to_cart"
        );
        assert_eq!(schema_stem("order:created"), "order.created");
    }

    #[test]
    fn event_names_and_suggestions() {
        assert!(is_event_name("order:status_changed"));
        for bad in [
            "order",
            "Order:created",
            "order:",
            ":created",
            "order:created_",
            "a:b:c",
        ] {
            assert!(!is_event_name(bad), "{bad}");
        }
        assert_eq!(closest("admn", ["admin", "staff"]), Some("admin"));
        assert_eq!(closest("ADMIN", ["admin"]), Some("admin"));
        assert_eq!(closest("zzz", ["admin", "staff"]), None);
    }

    #[test]
    fn identifiers() {
        assert!(is_identifier("order_id"));
        assert!(is_identifier("type"));
        assert!(is_keyword("type"));
        assert!(!is_identifier("self"));
        assert!(!is_identifier("9lives"));
        assert!(!is_identifier("e-mail"));
    }
}
