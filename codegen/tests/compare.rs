//! The change check, one case per rule: a catalog, an edit of it, and the rule and classes the
//! check must report. Every rule the check knows has a case here (the last test says so).

use omnicast_codegen::compare::{Change, Class, Rule, compare};
use omnicast_codegen::load_str;

const BASE: &str = r#"
roles:
  admin:
    description: Runs the shop.
  staff:
    description: Works the floor.
  customer:
    description: A shopper.
    own_events_only: true
  guest:
    description: Browses.

enums:
  Status:
    description: Where an order is.
    values: [pending, shipped]
  Unused:
    description: Nothing uses it.
    values: [a, b]

history: {size: 100, ttl: 10m}

namespaces:
  orders:
    description: Orders.
    events:
      order:created:
        description: New order placed
        roles: [admin, customer]
        owner: customerId
        target_roles: targetRoles
        fields:
          orderId: string
          customerId: string
          total: integer
          paid: integer
          due: {type: integer, computed: total - paid}
          status: Status
          note: string?
          targetRoles: Role[]?
        example: {orderId: O-1, customerId: c-1, total: 3, paid: 1, due: 2, status: pending}
      order:paid:
        description: An order was paid
        roles: [admin, staff]
        owner: customerId
        fields:
          orderId: string
          customerId: string
          payerId: string
          items: integer
        example: {orderId: O-1, customerId: c-1, payerId: p-1, items: 2}
  system:
    description: System.
    history: off
    events:
      system:notice:
        description: A notice
        roles: [admin, staff]
        fields:
          message: string
        example: {message: hi}
      system:alert:
        description: An alert
        roles: [admin]
        fields:
          level: string
        example: {level: high}
  presence:
    description: Who is online.
    events:
      presence:online:
        description: A customer came online
        roles: [admin]
        fields:
          customerId: string
        server_emits:
          on: first_connect
          roles: [customer]
          data: {customerId: $user_id}
        example: {customerId: c-1}
"#;

/// `BASE` with each `(from, to)` replaced; each `from` must occur exactly once.
fn edited(edits: &[(&str, &str)]) -> String {
    let mut text = BASE.to_owned();
    for (from, to) in edits {
        assert_eq!(text.matches(from).count(), 1, "`{from}` must occur once");
        text = text.replacen(from, to, 1);
    }
    text
}

fn changes(old: &str, new: &str) -> Vec<Change> {
    let old = load_str("old.yaml", old).unwrap_or_else(|d| panic!("old: {d}"));
    let new = load_str("new.yaml", new).unwrap_or_else(|d| panic!("new: {d}"));
    compare(&old, &new)
}

/// A case: an edit, and the rules it must report (exactly these, in any order).
struct Case {
    name: &'static str,
    edits: &'static [(&'static str, &'static str)],
    expected: &'static [Rule],
    /// Compare the edit's result with the base instead (the reverse change).
    reverse: bool,
}

const fn case(
    name: &'static str,
    edits: &'static [(&'static str, &'static str)],
    expected: &'static [Rule],
) -> Case {
    Case {
        name,
        edits,
        expected,
        reverse: false,
    }
}

const fn reverse(
    name: &'static str,
    edits: &'static [(&'static str, &'static str)],
    expected: &'static [Rule],
) -> Case {
    Case {
        name,
        edits,
        expected,
        reverse: true,
    }
}

const CASES: &[Case] = &[
    case(
        "a new event",
        &[(
            "  system:\n    description",
            "      order:shipped:\n        description: Shipped\n        roles: [admin]\n        fields:\n          orderId: string\n        example: {orderId: O-1}\n  system:\n    description",
        )],
        &[Rule::EventAdded],
    ),
    reverse(
        "an event removed",
        &[(
            "  system:\n    description",
            "      order:shipped:\n        description: Shipped\n        roles: [admin]\n        fields:\n          orderId: string\n        example: {orderId: O-1}\n  system:\n    description",
        )],
        &[Rule::EventRemoved],
    ),
    case(
        "an event moved to a namespace fewer roles subscribe to",
        &[
            (
                "      order:paid:\n        description: An order was paid\n        roles: [admin, staff]\n        owner: customerId\n        fields:\n          orderId: string\n          customerId: string\n          payerId: string\n          items: integer\n        example: {orderId: O-1, customerId: c-1, payerId: p-1, items: 2}\n",
                "",
            ),
            (
                "    events:\n      presence:online:",
                "    events:\n      order:paid:\n        description: An order was paid\n        roles: [admin, staff]\n        owner: customerId\n        fields:\n          orderId: string\n          customerId: string\n          payerId: string\n          items: integer\n        example: {orderId: O-1, customerId: c-1, payerId: p-1, items: 2}\n      presence:online:",
            ),
        ],
        // orders is subscribed by admin, staff and customer; presence by admin (and staff now).
        &[Rule::EventMoved, Rule::EventMovedNarrower],
    ),
    case(
        "an event moved to a namespace more roles subscribe to",
        &[
            (
                "      system:alert:\n        description: An alert\n        roles: [admin]\n        fields:\n          level: string\n        example: {level: high}\n",
                "",
            ),
            (
                "    events:\n      order:created:",
                "    events:\n      system:alert:\n        description: An alert\n        roles: [admin]\n        fields:\n          level: string\n        example: {level: high}\n      order:created:",
            ),
        ],
        // system is subscribed by admin and staff; orders by admin, staff and customer.
        &[Rule::EventMoved, Rule::EventMovedWider],
    ),
    case(
        "a payload renamed",
        &[(
            "      order:paid:\n        description: An order was paid\n",
            "      order:paid:\n        description: An order was paid\n        payload: PaidPayload\n",
        )],
        &[Rule::PayloadRenamed],
    ),
    case(
        "an event's description",
        &[(
            "description: An order was paid",
            "description: An order was settled",
        )],
        &[Rule::EventDescriptionChanged],
    ),
    case(
        "an example",
        &[("items: 2}", "items: 3}")],
        &[Rule::ExampleChanged],
    ),
    case(
        "presence emitted on another occasion",
        &[("on: first_connect", "on: last_disconnect")],
        &[Rule::ServerEmitsChanged],
    ),
    case(
        "an optional field added",
        &[(
            "          note: string?\n",
            "          note: string?\n          coupon: string?\n",
        )],
        &[Rule::OptionalFieldAdded],
    ),
    case(
        "a required field added",
        &[
            (
                "          payerId: string\n",
                "          payerId: string\n          method: string\n",
            ),
            ("items: 2}", "items: 2, method: card}"),
        ],
        &[Rule::RequiredFieldAdded],
    ),
    case(
        "a computed field added",
        &[
            (
                "          status: Status\n",
                "          status: Status\n          owed: {type: integer, computed: paid - total}\n",
            ),
            ("due: 2,", "due: 2, owed: -2,"),
        ],
        &[Rule::ComputedFieldAdded],
    ),
    case(
        "a field removed",
        &[("          note: string?\n", "")],
        &[Rule::FieldRemoved],
    ),
    case(
        "a field's type changed",
        &[("note: string?", "note: boolean?")],
        &[Rule::FieldTypeChanged],
    ),
    case(
        "a field's type widened",
        &[("          items: integer\n", "          items: number\n")],
        &[Rule::FieldTypeWidened],
    ),
    case(
        "a field's type narrowed",
        &[("note: string?", "note: Status?")],
        &[Rule::FieldTypeNarrowed],
    ),
    case(
        "a field made optional",
        &[(
            "          payerId: string\n",
            "          payerId: string?\n",
        )],
        &[Rule::FieldMadeOptional],
    ),
    case(
        "a field made required",
        &[
            ("note: string?", "note: string"),
            ("status: pending}", "status: pending, note: x}"),
        ],
        &[Rule::FieldMadeRequired],
    ),
    case(
        "a field omnicast computes now",
        &[
            (
                "          paid: integer\n",
                "          paid: {type: integer, computed: total - due}\n          due: integer\n",
            ),
            (
                "          due: {type: integer, computed: total - paid}\n",
                "",
            ),
        ],
        &[Rule::FieldNowComputed, Rule::FieldNoLongerComputed],
    ),
    reverse(
        "a field omnicast computes now, alone",
        &[(
            "          due: {type: integer, computed: total - paid}\n",
            "          due: integer\n",
        )],
        &[Rule::FieldNowComputed],
    ),
    case(
        "a field omnicast no longer computes",
        &[(
            "          due: {type: integer, computed: total - paid}\n",
            "          due: integer\n",
        )],
        &[Rule::FieldNoLongerComputed],
    ),
    case(
        "a formula",
        &[
            ("computed: total - paid", "computed: paid - total"),
            ("due: 2,", "due: -2,"),
        ],
        &[Rule::FormulaChanged],
    ),
    case(
        "a field's description",
        &[(
            "          orderId: string\n          customerId: string\n          total",
            "          orderId: {type: string, description: The order.}\n          customerId: string\n          total",
        )],
        &[Rule::FieldDescriptionChanged],
    ),
    case(
        "an enum value added",
        &[("[pending, shipped]", "[pending, shipped, lost]")],
        &[Rule::EnumValueAdded],
    ),
    case(
        "an enum value removed",
        &[("[pending, shipped]", "[pending]")],
        &[Rule::EnumValueRemoved],
    ),
    case(
        "a role added to an event",
        &[(
            "roles: [admin, customer]",
            "roles: [admin, staff, customer]",
        )],
        &[Rule::RolesAdded],
    ),
    case(
        "a role removed from an event",
        &[
            ("roles: [admin, customer]", "roles: [admin]"),
            (
                "        owner: customerId\n        target_roles",
                "        target_roles",
            ),
        ],
        &[Rule::RolesRemoved, Rule::OwnerRemoved],
    ),
    case(
        "an event for all roles",
        &[("roles: [admin, customer]", "roles: all")],
        &[Rule::RolesAdded],
    ),
    reverse(
        "an event no longer for all roles",
        &[("roles: [admin, customer]", "roles: all")],
        &[Rule::RolesRemoved],
    ),
    case(
        "an owner removed",
        &[(
            "        roles: [admin, staff]\n        owner: customerId\n",
            "        roles: [admin, staff]\n",
        )],
        &[Rule::OwnerRemoved],
    ),
    reverse(
        "an owner added",
        &[(
            "        roles: [admin, staff]\n        owner: customerId\n",
            "        roles: [admin, staff]\n",
        )],
        &[Rule::OwnerAdded],
    ),
    case(
        "an owner changed",
        &[(
            "        roles: [admin, staff]\n        owner: customerId\n",
            "        roles: [admin, staff]\n        owner: payerId\n",
        )],
        &[Rule::OwnerChanged],
    ),
    case(
        "target roles removed",
        &[("        target_roles: targetRoles\n", "")],
        &[Rule::TargetRolesRemoved],
    ),
    reverse(
        "target roles added",
        &[("        target_roles: targetRoles\n", "")],
        &[Rule::TargetRolesAdded],
    ),
    case(
        "own events only removed",
        &[("    own_events_only: true\n", "")],
        &[Rule::OwnEventsOnlyRemoved],
    ),
    reverse(
        "own events only added",
        &[("    own_events_only: true\n", "")],
        &[Rule::OwnEventsOnlyAdded],
    ),
    case(
        "a role added",
        &[(
            "  guest:\n",
            "  manager:\n    description: Manages.\n  guest:\n",
        )],
        &[Rule::RoleAdded],
    ),
    case(
        "a role removed",
        &[("  guest:\n    description: Browses.\n", "")],
        &[Rule::RoleRemoved],
    ),
    case(
        "a role's description",
        &[("description: Browses.", "description: Looks around.")],
        &[Rule::RoleDescriptionChanged],
    ),
    case(
        "a namespace added",
        &[(
            "  presence:\n",
            "  products:\n    description: Products.\n    events:\n      product:seen:\n        description: Seen\n        roles: [admin]\n        fields:\n          productId: string\n        example: {productId: P-1}\n  presence:\n",
        )],
        &[Rule::NamespaceAdded, Rule::EventAdded],
    ),
    reverse(
        "a namespace removed",
        &[(
            "  presence:\n",
            "  products:\n    description: Products.\n    events:\n      product:seen:\n        description: Seen\n        roles: [admin]\n        fields:\n          productId: string\n        example: {productId: P-1}\n  presence:\n",
        )],
        &[Rule::NamespaceRemoved, Rule::EventRemoved],
    ),
    case(
        "a namespace's description",
        &[("description: System.", "description: The system.")],
        &[Rule::NamespaceDescriptionChanged],
    ),
    case(
        "history kept where there was none",
        &[("    history: off\n", "    history: {size: 10, ttl: 1m}\n")],
        &[Rule::HistoryLonger],
    ),
    case(
        "a shorter default history",
        &[(
            "history: {size: 100, ttl: 10m}",
            "history: {size: 50, ttl: 10m}",
        )],
        &[Rule::HistoryShorter, Rule::HistoryShorter],
    ),
    case(
        "a longer history",
        &[(
            "history: {size: 100, ttl: 10m}",
            "history: {size: 100, ttl: 2h}",
        )],
        &[Rule::HistoryLonger, Rule::HistoryLonger],
    ),
    case(
        "an enum added",
        &[(
            "  Unused:\n",
            "  Color:\n    description: A color.\n    values: [red]\n  Unused:\n",
        )],
        &[Rule::EnumAdded],
    ),
    case(
        "an enum removed",
        &[(
            "  Unused:\n    description: Nothing uses it.\n    values: [a, b]\n",
            "",
        )],
        &[Rule::EnumRemoved],
    ),
    case(
        "an enum's description",
        &[("description: Nothing uses it.", "description: Unused.")],
        &[Rule::EnumDescriptionChanged],
    ),
    case(
        "comments, formatting and order",
        &[
            ("roles:\n  admin:", "# who connects\nroles:\n\n  admin:"),
            ("[pending, shipped]", "\n      - pending\n      - shipped"),
            ("  guest:\n    description: Browses.\n", ""),
            (
                "  admin:\n    description: Runs the shop.\n",
                "  admin:\n    description: Runs the shop.\n  guest:\n    description: Browses.\n",
            ),
        ],
        &[],
    ),
];

#[test]
fn every_case_reports_exactly_its_rules_with_their_classes() {
    let mut failures = Vec::new();
    for case in CASES {
        let edited = edited(case.edits);
        let found = if case.reverse {
            changes(&edited, BASE)
        } else {
            changes(BASE, &edited)
        };
        // An edit that adds a required field also edits the example; that is not the case's point.
        let mut rules: Vec<Rule> = found
            .iter()
            .map(|c| c.rule)
            .filter(|r| *r != Rule::ExampleChanged || case.expected.contains(r))
            .collect();
        let mut expected = case.expected.to_vec();
        rules.sort();
        expected.sort();
        if rules != expected {
            let found: Vec<String> = found.iter().map(Change::id).collect();
            failures.push(format!(
                "{}: expected {expected:?}, found {found:?}",
                case.name
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn every_rule_has_a_case() {
    let covered: Vec<Rule> = CASES
        .iter()
        .flat_map(|c| c.expected.iter().copied())
        .collect();
    let missing: Vec<&str> = Rule::ALL
        .iter()
        .filter(|r| !covered.contains(r))
        .map(|r| r.name())
        .collect();
    assert!(missing.is_empty(), "rules without a case: {missing:?}");
    assert!(CASES.len() >= 25);
}

#[test]
fn classes_of_the_rules_that_matter_most() {
    let widens = [
        Rule::RolesAdded,
        Rule::OwnerRemoved,
        Rule::OwnerChanged,
        Rule::OwnEventsOnlyRemoved,
        Rule::TargetRolesRemoved,
        Rule::EventMovedWider,
        Rule::HistoryLonger,
    ];
    for rule in widens {
        assert_eq!(rule.classes(), &[Class::Widens], "{rule}");
    }
    for rule in [
        Rule::EventRemoved,
        Rule::FieldRemoved,
        Rule::FieldTypeChanged,
        Rule::EnumValueRemoved,
    ] {
        assert!(rule.classes().contains(&Class::BreaksReceivers), "{rule}");
        assert!(rule.classes().contains(&Class::BreaksPublishers), "{rule}");
    }
    assert_eq!(
        Rule::RequiredFieldAdded.classes(),
        &[Class::BreaksPublishers]
    );
    assert_eq!(Rule::OptionalFieldAdded.classes(), &[Class::Safe]);
}

#[test]
fn a_change_names_its_event_field_values_and_place() {
    let found = changes(
        BASE,
        &edited(&[("          items: integer\n", "          items: number\n")]),
    );
    let [change] = found.as_slice() else {
        panic!("{found:?}")
    };
    assert_eq!(change.id(), "field-type-widened:order:paid.items");
    assert_eq!(change.event.as_deref(), Some("order:paid"));
    assert_eq!(change.field.as_deref(), Some("items"));
    assert_eq!(
        (change.before.as_deref(), change.after.as_deref()),
        (Some("integer"), Some("number"))
    );
    assert_eq!(
        change.path,
        [
            "namespaces",
            "orders",
            "events",
            "order:paid",
            "fields",
            "items"
        ]
    );
    assert_eq!(
        change.describe(),
        "field type widened: `integer` → `number`"
    );
}
