//! `serde_json`'s pretty printing, applied to compact JSON text that `serde_json` wrote: the snapshot file
//! is written from its members' compact texts, and must read exactly as when it was written from their
//! `Value` trees. Only the whitespace between tokens differs between the two forms, so the text is
//! re-indented, not parsed: strings (with their escapes), numbers and literals are copied as they are.

/// Appends `compact` to `out` as `serde_json::to_vec_pretty` writes it, nested `depth` levels deep (two
/// spaces a level): `{` or `[` then each entry on its own line, `": "` after a key, and `{}` and `[]` for
/// empty ones. `compact` must be `serde_json`'s compact output (no whitespace outside strings).
pub fn reindent(compact: &[u8], depth: usize, out: &mut Vec<u8>) {
    let newline = |depth: usize, out: &mut Vec<u8>| {
        out.push(b'\n');
        out.resize(out.len() + 2 * depth, b' ');
    };
    let mut depth = depth;
    let mut in_string = false;
    let mut escaped = false;
    let mut bytes = compact.iter().copied().peekable();
    while let Some(byte) = bytes.next() {
        if in_string {
            out.push(byte);
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => {
                in_string = true;
                out.push(byte);
            }
            b'{' | b'[' => {
                out.push(byte);
                if matches!(bytes.peek(), Some(b'}' | b']')) {
                    out.extend(bytes.next());
                } else {
                    depth += 1;
                    newline(depth, out);
                }
            }
            b'}' | b']' => {
                depth -= 1;
                newline(depth, out);
                out.push(byte);
            }
            b',' => {
                out.push(byte);
                newline(depth, out);
            }
            b':' => out.extend_from_slice(b": "),
            _ => out.push(byte),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pretty(value: &serde_json::Value) -> String {
        let compact = serde_json::to_vec(value).expect("serialises");
        let mut out = Vec::new();
        reindent(&compact, 0, &mut out);
        String::from_utf8(out).expect("UTF-8")
    }

    #[test]
    fn it_writes_what_serde_json_pretty_prints() {
        let value = serde_json::json!({
            "Env": ["A=1", "QUOTE=say \"hi\", {ok}: [x]", "BACKSLASH=C:\\dir\\", "UNICODE=é ✓ \u{1}"],
            "Empty": {}, "None": [], "Nested": {"a": [{"b": null}, [], {}, [1, 2.5, -3e-7]], "t": true},
            "Labels": {"com.example/key:with,punctuation": "v"}, "Number": 18_446_744_073_709_551_615_u64,
        });
        assert_eq!(
            pretty(&value),
            serde_json::to_string_pretty(&value).expect("serialises")
        );
        for scalar in [
            serde_json::json!(null),
            serde_json::json!("x"),
            serde_json::json!([]),
        ] {
            assert_eq!(
                pretty(&scalar),
                serde_json::to_string_pretty(&scalar).expect("serialises")
            );
        }
    }

    #[test]
    fn nested_it_indents_from_its_depth() {
        let mut out = Vec::new();
        reindent(br#"{"a":[1]}"#, 2, &mut out);
        assert_eq!(out, b"{\n      \"a\": [\n        1\n      ]\n    }");
    }
}
