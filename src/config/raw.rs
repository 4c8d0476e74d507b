//! The project file as written: serde structs with spans, read section by section so that a
//! problem in one image does not hide the problems of another. Unknown keys are all reported
//! (with the keys that are allowed), then dropped before serde sees the section; serde's
//! `deny_unknown_fields` stays on as the backstop.

use std::collections::BTreeMap;
use std::ops::Range;

use serde::de::{self, Deserialize, Deserializer, Visitor};
use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

use super::diagnostic::Report;

/// A list whose position matters as a whole (an empty list) and entry by entry.
pub(crate) type SpannedList = Spanned<Vec<Spanned<String>>>;

/// `[defaults]`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
pub(crate) struct RawDefaults {
    pub platforms: Option<SpannedList>,
    pub registry: Option<Spanned<String>>,
    pub index_format: Option<Spanned<String>>,
    pub output: Option<Spanned<String>>,
    #[serde(default)]
    pub insecure_registries: Vec<Spanned<String>>,
}

/// `[images.NAME]`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
pub(crate) struct RawImage {
    pub context: Option<Spanned<String>>,
    pub dockerfile: Option<Spanned<String>>,
    pub target: Option<Spanned<String>>,
    pub repository: Option<Spanned<String>>,
    pub tags: Option<SpannedList>,
    pub platforms: Option<SpannedList>,
    #[serde(default)]
    pub build_args: BTreeMap<String, String>,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub check: RawCheck,
}

/// `check = { ... }` of an image.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, rename_all = "kebab-case", expecting = "a table")]
pub(crate) struct RawCheck {
    #[serde(default)]
    pub ignore: Vec<Spanned<String>>,
    #[serde(default)]
    pub binaries: Vec<Spanned<String>>,
    #[serde(default)]
    pub page_size: Option<Spanned<i64>>,
}

/// The top-level tables of a project file.
const TOP_LEVEL: &[&str] = &["defaults", "images", "builders"];

/// The sections that could be read; a section with a problem serde found is left out.
#[derive(Debug, Default)]
pub(crate) struct RawProject {
    pub defaults: RawDefaults,
    /// Where `images` is written, if it is.
    pub images_span: Option<Range<usize>>,
    /// How many `[images.NAME]` tables there are, including those that could not be read.
    pub images_declared: usize,
    pub images: Vec<(Spanned<String>, RawImage)>,
    pub builders: Vec<(Spanned<String>, Vec<Spanned<String>>)>,
}

/// Reads the TOML document into sections, reporting syntax errors, unknown keys and values
/// of the wrong type. `None` when the text is not TOML at all.
pub(crate) fn read(text: &str, report: &mut Report) -> Option<RawProject> {
    let (doc, errors) = DeTable::parse_recoverable(text);
    if !errors.is_empty() {
        for e in errors {
            let span = e.span().unwrap_or(0..0);
            report.at(&span, format!("invalid TOML: {}", e.message().trim_end()));
        }
        return None;
    }
    let mut project = RawProject::default();
    for (key, value) in doc.into_inner() {
        let span = key.span();
        match key.get_ref().as_ref() {
            "defaults" => {
                if let Some(d) = section::<RawDefaults>(value, "[defaults]", report) {
                    project.defaults = d;
                }
            }
            "images" => {
                project.images_span = Some(span);
                project.images_declared = value.get_ref().as_table().map_or(1, |t| t.len());
                project.images = images(value, report);
            }
            "builders" => project.builders = builders(value, report),
            other => unknown_key(report, &span, other, "at the top level", TOP_LEVEL),
        }
    }
    Some(project)
}

fn images<'i>(
    value: Spanned<DeValue<'i>>,
    report: &mut Report,
) -> Vec<(Spanned<String>, RawImage)> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        report.at(&span, "images must be a table of [images.NAME] tables");
        return Vec::new();
    };
    let mut out = Vec::new();
    for (name, mut value) in table {
        let title = format!("[images.{}]", name.get_ref());
        let name = Spanned::new(name.span(), name.get_ref().to_string());
        if let DeValue::Table(t) = value.get_mut() {
            if let Some(check) = t.get_mut("check") {
                drop_unknown_keys::<RawCheck>(check, &format!("{title} check"), report);
            }
        }
        if let Some(image) = section::<RawImage>(value, &title, report) {
            out.push((name, image));
        }
    }
    out
}

fn builders(
    value: Spanned<DeValue<'_>>,
    report: &mut Report,
) -> Vec<(Spanned<String>, Vec<Spanned<String>>)> {
    let span = value.span();
    let DeValue::Table(table) = value.into_inner() else {
        report.at(
            &span,
            "builders must be a table of PLATFORM = \"URL\" (or [\"URL\", ...]) entries",
        );
        return Vec::new();
    };
    let mut out = Vec::new();
    for (key, value) in table {
        let key = Spanned::new(key.span(), key.get_ref().to_string());
        if let Some(urls) = builder_urls(&key, value, report) {
            out.push((key, urls));
        }
    }
    out
}

/// One URL, or an array of URLs whose jobs are spread over them; `None` after reporting.
fn builder_urls(
    key: &Spanned<String>,
    value: Spanned<DeValue<'_>>,
    report: &mut Report,
) -> Option<Vec<Spanned<String>>> {
    let wrong = |report: &mut Report, span: &Range<usize>, what: &str| {
        report.at(
            span,
            format!(
                "[builders] \"{}\" must be a string such as \"ssh://user@host\" or an array \
                 of them, not {}",
                key.get_ref(),
                with_article(what)
            ),
        )
    };
    let span = value.span();
    match value.into_inner() {
        DeValue::String(url) => Some(vec![Spanned::new(span, url.to_string())]),
        DeValue::Array(items) if items.is_empty() => {
            report.at(
                &span,
                format!(
                    "[builders] \"{}\" is an empty array; give at least one URL, or remove the entry",
                    key.get_ref()
                ),
            );
            None
        }
        DeValue::Array(items) => {
            let mut urls = Vec::new();
            for item in items {
                let item_span = item.span();
                match item.get_ref().as_str() {
                    Some(url) => urls.push(Spanned::new(item_span, url.to_string())),
                    None => wrong(report, &item_span, item.get_ref().type_str()),
                }
            }
            (!urls.is_empty()).then_some(urls)
        }
        other => {
            wrong(report, &span, other.type_str());
            None
        }
    }
}

fn with_article(noun: &str) -> String {
    let article = if noun.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    };
    format!("{article} {noun}")
}

/// Deserializes one section after reporting and dropping its unknown keys.
fn section<T>(mut value: Spanned<DeValue<'_>>, title: &str, report: &mut Report) -> Option<T>
where
    T: for<'de> Deserialize<'de>,
{
    drop_unknown_keys::<T>(&mut value, title, report);
    let span = value.span();
    T::deserialize(ValueDeserializer::from(value))
        .map_err(|e| {
            let at = e.span().unwrap_or(span);
            report.at(&at, format!("{title}: {}", e.message()));
        })
        .ok()
}

/// Reports every key of a table that `T` does not have, and removes it.
fn drop_unknown_keys<T>(value: &mut Spanned<DeValue<'_>>, title: &str, report: &mut Report)
where
    T: for<'de> Deserialize<'de>,
{
    let allowed = field_names::<T>();
    if let DeValue::Table(table) = value.get_mut() {
        let where_ = format!("in {title}");
        retain_known(table, allowed, &where_, report);
    }
}

fn retain_known(table: &mut DeTable<'_>, allowed: &[&str], where_: &str, report: &mut Report) {
    let unknown: Vec<(String, Range<usize>)> = table
        .keys()
        .filter(|key| !allowed.contains(&key.get_ref().as_ref()))
        .map(|key| (key.get_ref().to_string(), key.span()))
        .collect();
    for (key, span) in unknown {
        unknown_key(report, &span, &key, where_, allowed);
        table.remove(key.as_str());
    }
}

fn unknown_key(
    report: &mut Report,
    span: &Range<usize>,
    key: &str,
    where_: &str,
    allowed: &[&str],
) {
    let guess = allowed
        .iter()
        .map(|k| (strsim::damerau_levenshtein(key, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| format!("; did you mean \"{k}\"?"))
        .unwrap_or_default();
    let list: Vec<String> = allowed.iter().map(|k| format!("\"{k}\"")).collect();
    report.at(
        span,
        format!(
            "unknown key \"{key}\" {where_}{guess} (allowed: {})",
            list.join(", ")
        ),
    );
}

/// The field names serde expects for a struct, as written in the file (after renaming):
/// the single source of the "allowed keys" lists.
fn field_names<T>() -> &'static [&'static str]
where
    T: for<'de> Deserialize<'de>,
{
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(FieldProbe(&mut fields));
    fields
}

/// A deserializer that only records the fields a struct asks for, then stops.
struct FieldProbe<'a>(&'a mut &'static [&'static str]);

impl<'de> Deserializer<'de> for FieldProbe<'_> {
    type Error = de::value::Error;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
        Err(de::Error::custom("not a struct"))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, Self::Error> {
        *self.0 = fields;
        Err(de::Error::custom("fields recorded"))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowed_keys_come_from_the_serde_structs() {
        assert_eq!(
            field_names::<RawCheck>(),
            &["ignore", "binaries", "page-size"]
        );
        assert!(field_names::<RawImage>().contains(&"build-args"));
        assert!(field_names::<RawDefaults>().contains(&"insecure-registries"));
    }
}
