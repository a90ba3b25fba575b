//! Ruby values to JSON and back.
//!
//! Ruby to JSON is strict, so that a PGMQ consumer reads exactly what the step published: a
//! value that has no faithful JSON form raises `TaskerEvents::ValidationError` naming where it
//! sits (`payload.items[2].price`). JSON to Ruby gives symbol keys all the way down and freezes
//! the result, because one event hash is shared by every subscriber it is delivered to.

use magnus::value::{Qfalse, Qtrue};
use magnus::{
    prelude::*, r_hash::ForEach, Error, Float, Integer, IntoValue, RArray, RHash, RString, Ruby,
    Symbol, Value,
};
use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Map, Number, Value as Json};

use crate::errors;

/// Deepest nesting accepted; deeper input is refused instead of exhausting the stack.
const MAX_DEPTH: usize = 128;

/// The default of `max_payload_bytes`.
pub const DEFAULT_MAX_BYTES: usize = 1 << 20;

/// Largest JSON form accepted for one converted value (a payload, a step result), so that a
/// stray 50 MB string cannot multiply into gigabytes across the bounded queues; set by `start`.
static MAX_BYTES: AtomicUsize = AtomicUsize::new(DEFAULT_MAX_BYTES);

/// Longest path quoted in full in an error; longer ones (deep or cyclic input) are shortened.
const MAX_PATH_CHARS: usize = 120;

pub fn set_max_bytes(limit: usize) {
    MAX_BYTES.store(limit, Ordering::Relaxed);
}

/// Converts a Ruby value to JSON; `path` names it in errors (e.g. `"payload"`).
pub fn to_json(ruby: &Ruby, value: Value, path: &str) -> Result<Json, Error> {
    let converter = Converter {
        ruby,
        limit: MAX_BYTES.load(Ordering::Relaxed),
        size: Cell::new(0),
        root: path,
    };
    converter.convert(value, &mut path.to_owned(), 0)
}

struct Converter<'r> {
    ruby: &'r Ruby,
    limit: usize,
    /// About how many bytes the JSON form has so far.
    size: Cell<usize>,
    root: &'r str,
}

impl Converter<'_> {
    fn invalid(&self, path: &str, what: impl std::fmt::Display) -> Error {
        let path = shorten(path);
        errors::error(self.ruby, "ValidationError", format!("{path}: {what}"))
    }

    /// A conversion method raised: a StandardError names the value, anything else (an
    /// interrupt, `exit`) goes on as it is.
    fn conversion_failed(&self, error: Error, path: &str, method: &str) -> Error {
        let Some(exception) = error.value() else {
            return error;
        };
        if !exception.is_kind_of(self.ruby.exception_standard_error()) {
            return error;
        }
        let class = unsafe { exception.classname() }.into_owned();
        self.invalid(path, format!("{method} raised {class}: {error}"))
    }

    /// Counts `bytes` more of JSON; refuses the value once it passes the limit.
    fn grow(&self, bytes: usize) -> Result<(), Error> {
        let size = self.size.get() + bytes;
        self.size.set(size);
        if size <= self.limit {
            return Ok(());
        }
        let message = format!(
            "{}: larger than max_payload_bytes ({} bytes) as JSON",
            self.root, self.limit
        );
        Err(errors::error(self.ruby, "ValidationError", message))
    }

    fn convert(&self, value: Value, path: &mut String, depth: usize) -> Result<Json, Error> {
        if depth > MAX_DEPTH {
            let what = format!("nested deeper than {MAX_DEPTH} levels (is it cyclic?)");
            return Err(self.invalid(path, what));
        }
        // Punctuation, and small values; strings and keys add their length below.
        self.grow(4)?;
        if value.is_nil() {
            return Ok(Json::Null);
        }
        if let Some(hash) = RHash::from_value(value) {
            return self.hash(hash, path, depth);
        }
        if let Some(array) = RArray::from_value(value) {
            return self.array(array, path, depth);
        }
        if let Some(string) = RString::from_value(value) {
            return self.string(string, path).map(Json::String);
        }
        if let Some(symbol) = Symbol::from_value(value) {
            let name = symbol.name()?.into_owned();
            self.grow(name.len())?;
            return Ok(Json::String(name));
        }
        if Qtrue::from_value(value).is_some() {
            return Ok(Json::Bool(true));
        }
        if Qfalse::from_value(value).is_some() {
            return Ok(Json::Bool(false));
        }
        if let Some(integer) = Integer::from_value(value) {
            return self.integer(integer, path);
        }
        if let Some(float) = Float::from_value(value) {
            let f = float.to_f64();
            return Number::from_f64(f)
                .map(Json::Number)
                .ok_or_else(|| self.invalid(path, format!("{f} has no JSON form")));
        }
        self.object(value, path, depth)
    }

    fn hash(&self, hash: RHash, path: &mut String, depth: usize) -> Result<Json, Error> {
        let mut map = Map::new();
        let base = path.len();
        hash.foreach(|key: Value, value: Value| {
            let key = self.key(key, path)?;
            path.push('.');
            path.push_str(&key);
            let converted = self.convert(value, path, depth + 1);
            path.truncate(base);
            map.insert(key, converted?);
            Ok(ForEach::Continue)
        })?;
        Ok(Json::Object(map))
    }

    fn key(&self, key: Value, path: &str) -> Result<String, Error> {
        if let Some(symbol) = Symbol::from_value(key) {
            let name = symbol.name()?.into_owned();
            self.grow(name.len())?;
            return Ok(name);
        }
        if let Some(string) = RString::from_value(key) {
            return self.string(string, path);
        }
        if Integer::from_value(key).is_some() {
            return key.to_r_string()?.to_string();
        }
        let class = unsafe { key.classname() }.into_owned();
        Err(self.invalid(
            path,
            format!("hash key of class {class} (use a String or Symbol)"),
        ))
    }

    fn array(&self, array: RArray, path: &mut String, depth: usize) -> Result<Json, Error> {
        let base = path.len();
        let mut items = Vec::with_capacity(array.len());
        for (index, item) in array.into_iter().enumerate() {
            // Writing to a String cannot fail.
            let _ = write!(path, "[{index}]");
            let converted = self.convert(item, path, depth + 1);
            path.truncate(base);
            items.push(converted?);
        }
        Ok(Json::Array(items))
    }

    fn string(&self, string: RString, path: &str) -> Result<String, Error> {
        self.grow(string.len())?;
        string
            .to_string()
            .map_err(|_| self.invalid(path, "string is not valid UTF-8 (binary data?)"))
    }

    fn integer(&self, integer: Integer, path: &str) -> Result<Json, Error> {
        if let Ok(i) = integer.to_i64() {
            return Ok(Json::from(i));
        }
        if let Ok(u) = integer.to_u64() {
            return Ok(Json::from(u));
        }
        Err(self.invalid(path, "integer does not fit in 64 bits"))
    }

    /// Other objects: times as ISO 8601 strings, BigDecimal as a decimal string (a JSON
    /// number would lose its precision), Set as an array, then `as_json` (ActiveSupport), then
    /// `to_h` (Struct, Data, OpenStruct); anything else is refused by name, as is an object
    /// whose conversion raises.
    fn object(&self, value: Value, path: &mut String, depth: usize) -> Result<Json, Error> {
        let class = unsafe { value.classname() }.into_owned();
        let conversion = match class.as_str() {
            "BigDecimal" => Some(("to_s", vec!["F".into_value_with(self.ruby)])),
            "Set" => Some(("to_a", vec![])),
            _ => ["iso8601", "as_json", "to_h"]
                .into_iter()
                .find(|method| value.respond_to(*method, false).unwrap_or(false))
                .map(|method| (method, vec![])),
        };
        let Some((method, args)) = conversion else {
            return Err(self.invalid(path, format!("a value of class {class} has no JSON form")));
        };
        let converted: Value = value
            .funcall(method, args.as_slice())
            .map_err(|e| self.conversion_failed(e, path, &format!("{class}#{method}")))?;
        if RString::from_value(converted).is_some() || method != "iso8601" {
            return self.convert(converted, path, depth + 1);
        }
        Err(self.invalid(path, format!("{class}#iso8601 returned no String")))
    }
}

/// A path short enough for an error message: its start and its end.
fn shorten(path: &str) -> String {
    let count = path.chars().count();
    if count <= MAX_PATH_CHARS {
        return path.to_owned();
    }
    let head: String = path.chars().take(MAX_PATH_CHARS / 2).collect();
    let tail: String = path.chars().skip(count - MAX_PATH_CHARS / 4).collect();
    format!("{head}…{tail}")
}

/// The path of the first string (value or key) holding U+0000, which PostgreSQL's `jsonb`
/// cannot store, so that a durable event carrying one is refused where it is published. The
/// path is spelled out only once one is found: this runs on every durable publish.
pub fn find_nul(json: &Json, path: &str) -> Option<String> {
    nul_at(json).map(|steps| spell(path, &steps))
}

/// [`find_nul`] for the entries of an object.
pub fn find_nul_in(map: &Map<String, Json>, path: &str) -> Option<String> {
    nul_in(map).map(|steps| spell(path, &steps))
}

enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// The steps to the first U+0000, innermost first.
fn nul_at(json: &Json) -> Option<Vec<Step<'_>>> {
    match json {
        Json::String(s) if s.contains('\0') => Some(Vec::new()),
        Json::Array(items) => items.iter().enumerate().find_map(|(i, item)| {
            let mut steps = nul_at(item)?;
            steps.push(Step::Index(i));
            Some(steps)
        }),
        Json::Object(map) => nul_in(map),
        _ => None,
    }
}

fn nul_in(map: &Map<String, Json>) -> Option<Vec<Step<'_>>> {
    map.iter().find_map(|(key, value)| {
        let mut steps = if key.contains('\0') {
            Vec::new()
        } else {
            nul_at(value)?
        };
        steps.push(Step::Key(key));
        Some(steps)
    })
}

fn spell(root: &str, steps: &[Step<'_>]) -> String {
    let mut path = root.to_owned();
    for step in steps.iter().rev() {
        // Writing to a String cannot fail.
        let _ = match step {
            Step::Key(key) => write!(path, ".{key}"),
            Step::Index(i) => write!(path, "[{i}]"),
        };
    }
    path
}

/// A frozen Ruby String: one event hash is shared by every subscriber it is delivered to.
pub fn frozen_str(ruby: &Ruby, text: &str) -> Value {
    let string = ruby.str_new(text);
    string.freeze();
    string.as_value()
}

/// The one frozen Ruby String with this text (Ruby's table of interned strings): for the parts
/// of an event that repeat from one event to the next (its name, namespace, version), so that
/// the drain thread allocates nothing for them.
pub fn interned_str(ruby: &Ruby, text: &str) -> Value {
    // SAFETY: called with the GVL (we hold `ruby`); `text` is valid UTF-8 of `text.len()` bytes,
    // which Ruby copies before returning.
    let raw = unsafe {
        rb_sys::rb_enc_interned_str(
            text.as_ptr().cast(),
            text.len() as std::os::raw::c_long,
            rb_sys::rb_utf8_encoding(),
        )
    };
    let _ = ruby;
    // SAFETY: `rb_enc_interned_str` returns a String object.
    unsafe { <Value as magnus::rb_sys::FromRawValue>::from_raw(raw) }
}

/// Converts JSON to a frozen Ruby value with symbol keys.
pub fn to_ruby(ruby: &Ruby, json: &Json) -> Result<Value, Error> {
    let value = match json {
        Json::Null => ruby.qnil().as_value(),
        Json::Bool(b) => (*b).into_value_with(ruby),
        Json::Number(n) => number(ruby, n),
        Json::String(s) => frozen_str(ruby, s),
        Json::Array(items) => {
            let array = ruby.ary_new_capa(items.len());
            for item in items {
                array.push(to_ruby(ruby, item)?)?;
            }
            array.freeze();
            array.as_value()
        }
        Json::Object(map) => object_to_ruby(ruby, map)?.as_value(),
    };
    Ok(value)
}

/// A JSON object as a frozen Hash with symbol keys.
pub fn object_to_ruby(ruby: &Ruby, map: &Map<String, Json>) -> Result<RHash, Error> {
    let hash = ruby.hash_new();
    for (key, value) in map {
        hash.aset(ruby.to_symbol(key), to_ruby(ruby, value)?)?;
    }
    hash.freeze();
    Ok(hash)
}

fn number(ruby: &Ruby, n: &Number) -> Value {
    if let Some(i) = n.as_i64() {
        ruby.integer_from_i64(i).as_value()
    } else if let Some(u) = n.as_u64() {
        ruby.integer_from_u64(u).as_value()
    } else {
        ruby.float_from_f64(n.as_f64().unwrap_or(f64::NAN))
            .as_value()
    }
}
