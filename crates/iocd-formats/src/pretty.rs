//! A small pretty-printer that keeps the key order we choose.
//!
//! The workspace's serde_json sorts object keys (its `preserve_order` feature would change JSON
//! for every crate), so exported files are built from [`Node`]s instead. The layout matches
//! `serde_json::to_string_pretty`: two-space indent, `"key": value`, `[]`/`{}` when empty.

use serde_json::Value;

pub(crate) enum Node {
    Object(Vec<(String, Node)>),
    Array(Vec<Node>),
    /// A value written as serde_json orders it (nested object keys sorted), which is stable.
    Leaf(Value),
}

pub(crate) fn to_pretty(node: &Node) -> String {
    let mut out = String::new();
    write_node(&mut out, node, 0);
    out
}

fn write_node(out: &mut String, node: &Node, depth: usize) {
    match node {
        Node::Object(entries) => write_object(
            out,
            entries.iter().map(|(key, value)| (key.as_str(), value)),
            entries.is_empty(),
            depth,
            write_node,
        ),
        Node::Array(items) => write_array(out, items.iter(), items.is_empty(), depth, write_node),
        Node::Leaf(value) => write_value(out, value, depth),
    }
}

fn write_value(out: &mut String, value: &Value, depth: usize) {
    match value {
        Value::Object(map) => write_object(
            out,
            map.iter().map(|(key, value)| (key.as_str(), value)),
            map.is_empty(),
            depth,
            write_value,
        ),
        Value::Array(items) => write_array(out, items.iter(), items.is_empty(), depth, write_value),
        scalar => out.push_str(&scalar.to_string()),
    }
}

fn write_object<'a, T: 'a>(
    out: &mut String,
    entries: impl Iterator<Item = (&'a str, &'a T)>,
    is_empty: bool,
    depth: usize,
    write_item: fn(&mut String, &T, usize),
) {
    if is_empty {
        out.push_str("{}");
        return;
    }
    out.push('{');
    for (index, (key, value)) in entries.enumerate() {
        if index > 0 {
            out.push(',');
        }
        newline_and_indent(out, depth + 1);
        out.push_str(&Value::from(key).to_string());
        out.push_str(": ");
        write_item(out, value, depth + 1);
    }
    newline_and_indent(out, depth);
    out.push('}');
}

fn write_array<'a, T: 'a>(
    out: &mut String,
    items: impl Iterator<Item = &'a T>,
    is_empty: bool,
    depth: usize,
    write_item: fn(&mut String, &T, usize),
) {
    if is_empty {
        out.push_str("[]");
        return;
    }
    out.push('[');
    for (index, item) in items.enumerate() {
        if index > 0 {
            out.push(',');
        }
        newline_and_indent(out, depth + 1);
        write_item(out, item, depth + 1);
    }
    newline_and_indent(out, depth);
    out.push(']');
}

fn newline_and_indent(out: &mut String, depth: usize) {
    out.push('\n');
    for _ in 0..depth {
        out.push_str("  ");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn leaf_layout_matches_serde_json_pretty() {
        let value = json!({"b": [1, {"z": null, "a": "é\"\n"}], "a": {}, "c": [], "d": 1.5});
        assert_eq!(
            to_pretty(&Node::Leaf(value.clone())),
            serde_json::to_string_pretty(&value).unwrap()
        );
    }

    #[test]
    fn object_nodes_keep_insertion_order() {
        let node = Node::Object(vec![
            ("zeta".into(), Node::Leaf(json!(1))),
            ("alpha".into(), Node::Array(vec![Node::Leaf(json!("x"))])),
        ]);
        assert_eq!(
            to_pretty(&node),
            "{\n  \"zeta\": 1,\n  \"alpha\": [\n    \"x\"\n  ]\n}"
        );
    }
}
