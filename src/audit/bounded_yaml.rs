//! YAML to JSON values with alias expansion bounded. YAML aliases (`*a`) repeat an anchored
//! node wherever they appear, so a few kilobytes of nested aliases expand to gigabytes (the
//! "billion laughs"). The YAML parser replays an alias's events into this visitor, which
//! charges every node and string it builds against a budget proportional to the text and
//! stops at the first node over it, before the memory is spent.

use std::cell::Cell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

/// What one node costs, besides its string bytes: about what a `Value` takes in memory.
const NODE_COST: usize = 32;

/// How much a document may expand: a fixed allowance plus this many times its text.
/// Without aliases a document costs at most about 16 times its text (a node takes two
/// bytes at least, `1,`), so no real file comes near.
pub const EXPANSION_FACTOR: usize = 64;
const ALLOWANCE: usize = 1 << 20;

/// The budget of one document, and whether it ran out.
pub struct Budget {
    left: Cell<usize>,
    pub limit: usize,
    exhausted: Cell<bool>,
}

impl Budget {
    /// The budget of a document of `text_len` bytes.
    pub fn for_text(text_len: usize) -> Budget {
        let limit = ALLOWANCE.saturating_add(text_len.saturating_mul(EXPANSION_FACTOR));
        Budget {
            left: Cell::new(limit),
            limit,
            exhausted: Cell::new(false),
        }
    }

    /// Whether parsing stopped because the budget ran out.
    pub fn exhausted(&self) -> bool {
        self.exhausted.get()
    }

    fn charge<E: de::Error>(&self, bytes: usize) -> Result<(), E> {
        let cost = NODE_COST.saturating_add(bytes);
        match self.left.get().checked_sub(cost) {
            Some(left) => {
                self.left.set(left);
                Ok(())
            }
            None => {
                self.exhausted.set(true);
                Err(E::custom("alias expansion over the limit"))
            }
        }
    }
}

/// Parses one YAML document into a JSON value within `budget`.
pub fn from_str(text: &str, budget: &Budget) -> Result<Value, serde_yaml_ng::Error> {
    let de = serde_yaml_ng::Deserializer::from_str(text);
    Seed(budget).deserialize(de)
}

/// Builds one value, charging the budget.
#[derive(Clone, Copy)]
struct Seed<'a>(&'a Budget);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;

    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Bool(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Number(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        self.0.charge(v.len())?;
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        self.0.charge(v.len())?;
        Ok(Value::String(v))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        self.0.charge(0)?;
        Ok(Value::Null)
    }

    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        self.visit_unit()
    }

    fn visit_some<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        self.0.charge(0)?;
        let mut items = Vec::new();
        while let Some(item) = seq.next_element_seed(self)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        self.0.charge(0)?;
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            self.0.charge(key.len())?;
            let value = map.next_value_seed(self)?;
            out.insert(key, value);
        }
        Ok(Value::Object(out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_documents_read_as_serde_would_read_them() {
        let text = "a: 1\nb: [x, 2.5, true, null]\nc: {d: -3}\n'7': e\n";
        let ours = from_str(text, &Budget::for_text(text.len())).unwrap();
        let theirs: Value = serde_yaml_ng::from_str(text).unwrap();
        assert_eq!(ours, theirs);
    }

    #[test]
    fn aliases_expand_until_the_budget_runs_out() {
        let shared = "x: &a {k: v}\ny: [*a, *a]\n";
        let b = Budget::for_text(shared.len());
        let v = from_str(shared, &b).unwrap();
        assert_eq!(v["y"][1]["k"], "v");
        assert!(!b.exhausted());

        // Ten levels of ten aliases each: 10^10 nodes from under 1 KB of text.
        let mut bomb = String::from("l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
        for i in 1..10 {
            let refs = vec![format!("*l{}", i - 1); 10].join(", ");
            bomb.push_str(&format!("l{i}: &l{i} [{refs}]\n"));
        }
        assert!(bomb.len() < 1024);
        let b = Budget::for_text(bomb.len());
        assert!(from_str(&bomb, &b).is_err());
        assert!(b.exhausted());
    }
}
