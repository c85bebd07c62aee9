//! Computed fields: `a - b` and `percent_change(a, b)`, parsed and checked against the fields.

use crate::diagnostic::did_you_mean;
use crate::model::{Computed, Enum, Field, FieldType};

/// A message and its help.
pub(super) type Problem = (String, Option<String>);

/// Parses `a - b` or `percent_change(a, b)` and checks it against the fields.
pub(super) fn computed(
    formula: &str,
    field: &Field,
    fields: &[Field],
    enums: &[Enum],
) -> Result<Computed, Problem> {
    let formula = formula.trim();
    let syntax_help = || {
        Some("write `<field> - <field>` or `percent_change(<old field>, <new field>)`".to_owned())
    };
    let parsed = if let Some(args) = formula
        .strip_prefix("percent_change(")
        .and_then(|rest| rest.strip_suffix(')'))
    {
        let (from, to) = args
            .split_once(',')
            .ok_or_else(|| (format!("cannot read formula `{formula}`"), syntax_help()))?;
        Computed::PercentChange {
            from: from.trim().to_owned(),
            to: to.trim().to_owned(),
        }
    } else if let Some((a, b)) = formula.split_once(" - ") {
        Computed::Difference {
            minuend: a.trim().to_owned(),
            subtrahend: b.trim().to_owned(),
        }
    } else {
        return Err((format!("cannot read formula `{formula}`"), syntax_help()));
    };
    if field.optional {
        return Err(("a computed field cannot be optional".into(), None));
    }
    let (operands, result_ok) = match &parsed {
        Computed::Difference {
            minuend,
            subtrahend,
        } => (
            [minuend, subtrahend],
            matches!(field.ty, FieldType::Integer | FieldType::Number),
        ),
        Computed::PercentChange { from, to } => ([from, to], field.ty == FieldType::Number),
    };
    if !result_ok {
        return Err((
            format!(
                "formula `{formula}` gives a number, but the field is `{}`",
                field.ty.display(enums)
            ),
            None,
        ));
    }
    for operand in operands {
        let Some(other) = fields.iter().find(|f| f.name == *operand) else {
            return Err((
                format!(
                    "formula `{formula}` uses `{operand}`, which is not a field of this payload"
                ),
                did_you_mean(operand, fields.iter().map(|f| f.name.as_str())),
            ));
        };
        let numeric = matches!(other.ty, FieldType::Integer | FieldType::Number);
        if !numeric || other.optional || other.name == field.name {
            return Err((
                format!(
                    "formula `{formula}` needs `{operand}` to be a required `number` or `integer` other than this field"
                ),
                None,
            ));
        }
        if let Computed::Difference { .. } = parsed
            && other.ty != field.ty
        {
            return Err((
                format!(
                    "formula `{formula}` subtracts `{}` values into a `{}` field",
                    other.ty.display(enums),
                    field.ty.display(enums)
                ),
                Some("give the operands and the result the same type".into()),
            ));
        }
    }
    Ok(parsed)
}
