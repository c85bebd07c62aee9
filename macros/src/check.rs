//! The derive's checks: a well-formed event name, the required keys, and owner and target-roles
//! fields that exist and have the types the runtime reads. Every problem is reported on its own
//! tokens, all at once.

use omnicast_runtime::names;
use syn::{GenericArgument, Ident, PathArguments, Type};

use crate::ast::{Field, FieldRef, Input, Parsed};
use crate::attr::Errors;

/// The checked input, or every problem found.
pub fn input(mut parsed: Parsed<'_>) -> syn::Result<Input<'_>> {
    if let Some(name) = &parsed.attrs.name
        && !names::is_event_name(&name.value())
    {
        parsed.errors.spanned(
            name,
            format!(
                "event name `{}` must be `namespace:action` in snake_case, like `order:created`",
                name.value()
            ),
        );
    }
    let owner = parsed.attrs.owner.as_ref().and_then(|owner| {
        let field = find_field(&parsed.fields, owner, &mut parsed.errors)?;
        if !is_path_to(field.ty, "String") {
            parsed.errors.spanned(
                field.ty,
                format!("owner field `{owner}` must be a `String` (the owner's user id)"),
            );
        }
        Some(FieldRef {
            ident: field.ident,
            wire: field.wire.clone(),
        })
    });
    let target_roles = parsed.attrs.target_roles.as_ref().and_then(|target| {
        let field = find_field(&parsed.fields, target, &mut parsed.errors)?;
        if option_vec_item(field.ty).is_none() {
            parsed.errors.spanned(
                field.ty,
                format!("target roles field `{target}` must be an `Option<Vec<Role>>`"),
            );
        }
        Some(FieldRef {
            ident: field.ident,
            wire: field.wire.clone(),
        })
    });

    let missing = |key: &str, example: &str| {
        syn::Error::new_spanned(
            parsed.ident,
            format!("missing `{key}`: add `#[event({key} = {example})]`"),
        )
    };
    if parsed.attrs.name.is_none() {
        parsed.errors.push(missing("name", "\"namespace:action\""));
    }
    if parsed.attrs.namespace.is_none() {
        parsed.errors.push(missing("namespace", "\"orders\""));
    }
    if parsed.attrs.roles.is_none() {
        parsed.errors.push(syn::Error::new_spanned(
            parsed.ident,
            "missing `roles`: add `#[event(roles(Role::Admin, ...))]` or `roles(all)`",
        ));
    }
    parsed.errors.finish()?;

    Ok(Input {
        ident: parsed.ident,
        name: parsed.attrs.name.expect("checked above"),
        namespace: parsed.attrs.namespace.expect("checked above"),
        description: parsed.description,
        roles: parsed.attrs.roles.expect("checked above"),
        owner,
        target_roles,
        computed: parsed.computed,
    })
}

fn find_field<'f, 'a>(
    fields: &'f [Field<'a>],
    wanted: &Ident,
    errors: &mut Errors,
) -> Option<&'f Field<'a>> {
    let found = fields.iter().find(|f| *f.ident == *wanted);
    if found.is_none() {
        let names = fields
            .iter()
            .map(|f| format!("`{}`", f.ident))
            .collect::<Vec<_>>()
            .join(", ");
        errors.spanned(
            wanted,
            format!("no field `{wanted}` in this struct; its fields are {names}"),
        );
    }
    found
}

/// Whether `ty` is a plain path ending in `last` (`String`, `std::string::String`).
fn is_path_to(ty: &Type, last: &str) -> bool {
    match ty {
        Type::Path(p) => {
            p.qself.is_none() && p.path.segments.last().is_some_and(|s| s.ident == last)
        }
        _ => false,
    }
}

/// For `Option<Vec<T>>`, `T`.
fn option_vec_item(ty: &Type) -> Option<&Type> {
    let inner = generic_arg(ty, "Option")?;
    generic_arg(inner, "Vec")
}

fn generic_arg<'t>(ty: &'t Type, wrapper: &str) -> Option<&'t Type> {
    let Type::Path(p) = ty else { return None };
    let segment = p.path.segments.last()?;
    if segment.ident != wrapper {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &segment.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t),
        _ => None,
    }
}
