//! XML read into the JSON shape Eureka's JSON codec uses (attributes become `@name`, text
//! beside attributes `$`), so one reader serves both.

use serde_json::{Map, Value};

use super::{WireError, err};

/// How deep XML elements may nest (JSON is held to serde_json's 128 levels).
pub const MAX_XML_DEPTH: usize = 32;

/// Reads XML into the JSON shape Eureka's JSON codec uses.
pub(super) fn xml_to_value(text: &str) -> Result<Value, WireError> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(text);
    // Text is kept as sent (values may start or end with spaces); whitespace between
    // elements is dropped in `finish`.
    // (name, attributes and children so far, text so far)
    let mut stack: Vec<(String, Map<String, Value>, String)> = Vec::new();
    let mut root: Option<(String, Value)> = None;
    loop {
        let event = reader.read_event().map_err(|e| xml_error(&reader, e))?;
        match event {
            Event::Start(e) | Event::Empty(e) if root.is_some() => {
                let _ = e;
                return Err(xml_error(&reader, "content after the root element"));
            }
            Event::Start(e) => {
                // Eureka's documents nest six levels deep; a limit keeps a hostile body from
                // building a tree whose (recursive) drop would overflow the stack.
                if stack.len() >= MAX_XML_DEPTH {
                    return Err(xml_error(
                        &reader,
                        format!("elements nested deeper than {MAX_XML_DEPTH}"),
                    ));
                }
                let (name, attrs) = element(&e, &reader)?;
                stack.push((name, attrs, String::new()));
            }
            Event::Empty(e) => {
                let (name, attrs) = element(&e, &reader)?;
                root = attach(&mut stack, name, finish(attrs, String::new()));
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    let text = t.decode().map_err(|e| xml_error(&reader, e))?;
                    let text =
                        quick_xml::escape::unescape(&text).map_err(|e| xml_error(&reader, e))?;
                    top.2.push_str(&text);
                }
            }
            Event::CData(t) => {
                if let Some(top) = stack.last_mut() {
                    top.2.push_str(&String::from_utf8_lossy(&t));
                }
            }
            Event::GeneralRef(r) => {
                if let Some(top) = stack.last_mut() {
                    let name = String::from_utf8_lossy(&r).into_owned();
                    let reference = format!("&{name};");
                    let resolved = quick_xml::escape::unescape(&reference)
                        .map_err(|e| xml_error(&reader, e))?;
                    top.2.push_str(&resolved);
                }
            }
            Event::End(_) => {
                let Some((name, attrs, text)) = stack.pop() else {
                    return Err(xml_error(&reader, "closing tag without an opening one"));
                };
                root = attach(&mut stack, name, finish(attrs, text));
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return err(
            "XML",
            format!("unclosed element <{}>", stack.last().map_or("", |s| &s.0)),
        );
    }
    let Some((name, value)) = root else {
        return err("XML", "no root element");
    };
    let mut doc = Map::new();
    doc.insert(name, value);
    Ok(Value::Object(doc))
}

/// An XML error at the reader's position.
fn xml_error(reader: &quick_xml::Reader<&[u8]>, reason: impl std::fmt::Display) -> WireError {
    WireError {
        path: format!("XML at byte {}", reader.buffer_position()),
        reason: reason.to_string(),
    }
}

fn element(
    e: &quick_xml::events::BytesStart<'_>,
    reader: &quick_xml::Reader<&[u8]>,
) -> Result<(String, Map<String, Value>), WireError> {
    let name = String::from_utf8_lossy(e.name().as_ref()).into_owned();
    let mut attrs = Map::new();
    for attr in e.attributes() {
        let attr = attr.map_err(|e| xml_error(reader, e))?;
        let key = format!("@{}", String::from_utf8_lossy(attr.key.as_ref()));
        let value = attr.unescape_value().map_err(|e| xml_error(reader, e))?;
        attrs.insert(key, Value::String(value.into_owned()));
    }
    Ok((name, attrs))
}

fn finish(mut fields: Map<String, Value>, text: String) -> Value {
    if fields.is_empty() {
        // A leaf keeps its text exactly; an element holding only indentation is empty.
        if text.trim().is_empty() {
            return Value::String(String::new());
        }
        return Value::String(text);
    }
    if !text.trim().is_empty() {
        fields.insert("$".to_owned(), Value::String(text));
    }
    Value::Object(fields)
}

/// Adds a child to the element on top of the stack; repeated names become arrays. Gives the
/// element back when there is no parent (it is the root).
fn attach(
    stack: &mut [(String, Map<String, Value>, String)],
    name: String,
    value: Value,
) -> Option<(String, Value)> {
    let Some((_, fields, _)) = stack.last_mut() else {
        return Some((name, value));
    };
    match fields.get_mut(&name) {
        Some(Value::Array(items)) => items.push(value),
        Some(existing) => {
            let first = existing.take();
            *existing = Value::Array(vec![first, value]);
        }
        None => {
            fields.insert(name, value);
        }
    }
    None
}
