//! Tool parameters mirrored into HTTP headers (revision 2026-07-28,
//! SEP-2243): a property of a tool's `inputSchema` annotated with
//! `x-mcp-header: Name` travels, besides the body, as `Mcp-Param-Name`, so
//! gateways can route on it without reading the body. A tool whose
//! annotations break the rules (an empty or ill-formed name, a name twice,
//! a property that is not a string, integer or boolean) is not used at all.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The prefix of a mirrored parameter's header.
pub const PARAM_HEADER_PREFIX: &str = "mcp-param-";

/// One mirrored parameter: the argument `property` travels as the header
/// `Mcp-Param-<header>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeaderParam {
    /// The argument's name.
    pub property: String,
    /// The header's name after `Mcp-Param-`.
    pub header: String,
}

/// The parameters `input_schema` mirrors into headers, or why the tool must
/// not be used.
///
/// ```
/// use serde_json::json;
/// let ok = json!({"type": "object", "properties": {
///     "region": {"type": "string", "x-mcp-header": "Region"},
///     "size": {"type": "integer"}}});
/// assert_eq!(idp::mcp::header_params(&ok).unwrap()[0].header, "Region");
/// let twice = json!({"properties": {
///     "a": {"type": "string", "x-mcp-header": "Region"},
///     "b": {"type": "string", "x-mcp-header": "region"}}});
/// assert!(idp::mcp::header_params(&twice).is_err());
/// ```
pub fn header_params(input_schema: &Value) -> Result<Vec<HeaderParam>, String> {
    let mut out: Vec<HeaderParam> = Vec::new();
    let Some(props) = input_schema.get("properties").and_then(Value::as_object) else {
        return Ok(out);
    };
    for (property, schema) in props {
        let Some(name) = schema.get("x-mcp-header") else {
            continue;
        };
        let name = name
            .as_str()
            .ok_or_else(|| format!("{property}: x-mcp-header is not a string"))?;
        if name.is_empty() || !name.bytes().all(is_token_char) {
            return Err(format!(
                "{property}: x-mcp-header {name:?} is not a header name"
            ));
        }
        let kind = schema.get("type").and_then(Value::as_str).unwrap_or("");
        if !matches!(kind, "string" | "integer" | "boolean") {
            return Err(format!(
                "{property}: x-mcp-header on a {kind:?} property (only string, integer, boolean)"
            ));
        }
        if out.iter().any(|p| p.header.eq_ignore_ascii_case(name)) {
            return Err(format!("x-mcp-header {name:?} names two properties"));
        }
        out.push(HeaderParam {
            property: property.clone(),
            header: name.to_owned(),
        });
    }
    Ok(out)
}

/// RFC 9110 `tchar`.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// An argument as a header value: `None` for null; a string of printable
/// ASCII with no surrounding whitespace as it is, any other string as
/// `=?base64?<its UTF-8 in base64>?=`; numbers and booleans as JSON writes
/// them.
///
/// ```
/// use serde_json::json;
/// use idp::mcp::header_value;
/// assert_eq!(header_value(&json!("us-west1")).as_deref(), Some("us-west1"));
/// assert_eq!(header_value(&json!(" padded ")).as_deref(), Some("=?base64?IHBhZGRlZCA=?="));
/// assert_eq!(header_value(&json!(42)).as_deref(), Some("42"));
/// assert_eq!(header_value(&json!(null)), None);
/// ```
pub fn header_value(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => {
            let plain = s.bytes().all(|b| (0x20..0x7f).contains(&b)) && s.trim() == s;
            Some(if plain {
                s.clone()
            } else {
                use base64::Engine as _;
                let b64 = base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
                format!("=?base64?{b64}?=")
            })
        }
        Value::Bool(_) | Value::Number(_) => Some(v.to_string()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

/// Keeps the usable tools of a `tools/list` result (dropping those whose
/// annotations break the rules) and returns each kept tool's mirrored
/// parameters.
pub fn usable_tools(result: &mut Value) -> BTreeMap<String, Vec<HeaderParam>> {
    let mut params = BTreeMap::new();
    if let Some(tools) = result.get_mut("tools").and_then(Value::as_array_mut) {
        tools.retain(|tool| {
            let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
            match header_params(tool.get("inputSchema").unwrap_or(&Value::Null)) {
                Ok(p) => {
                    if !p.is_empty() {
                        params.insert(name.to_owned(), p);
                    }
                    true
                }
                Err(_) => false,
            }
        });
    }
    params
}

/// The headers of a `tools/call` of a tool with mirrored parameters.
pub(crate) fn param_headers(known: &[HeaderParam], arguments: &Value) -> Vec<(String, String)> {
    known
        .iter()
        .filter_map(|p| {
            let value = header_value(arguments.get(&p.property)?)?;
            Some((format!("{PARAM_HEADER_PREFIX}{}", p.header), value))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_broken_annotation_drops_its_tool_only() {
        let tool = |name: &str, prop: Value| json!({"name": name, "inputSchema": {"properties": {"p": prop}}});
        let mut result = json!({"tools": [
            tool("valid", json!({"type": "string", "x-mcp-header": "Region"})),
            tool("empty", json!({"type": "string", "x-mcp-header": ""})),
            tool("object", json!({"type": "object", "x-mcp-header": "Data"})),
            tool("number", json!({"type": "number", "x-mcp-header": "Score"})),
            tool("space", json!({"type": "string", "x-mcp-header": "My Header"})),
            tool("colon", json!({"type": "string", "x-mcp-header": "A:B"})),
            tool("unicode", json!({"type": "string", "x-mcp-header": "Régión"})),
            tool("plain", json!({"type": "number"})),
        ]});
        let params = usable_tools(&mut result);
        let kept: Vec<&str> = result["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(kept, ["valid", "plain"]);
        assert_eq!(params.len(), 1);
        let headers = param_headers(&params["valid"], &json!({"p": "line1\nline2"}));
        assert_eq!(
            headers,
            [(
                "mcp-param-Region".to_owned(),
                "=?base64?bGluZTEKbGluZTI=?=".to_owned()
            )]
        );
        assert!(param_headers(&params["valid"], &json!({"p": null})).is_empty());
    }
}
