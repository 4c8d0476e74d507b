//! Plain aligned tables for the terminal: columns padded to their widest cell, two spaces
//! apart, no trailing blanks (what `docker images` and `kubectl get` print).

/// Renders `rows` (the first is the header) as aligned text, one line per row.
pub fn render<const N: usize>(rows: &[[String; N]]) -> String {
    let widths: Vec<usize> = (0..N)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(&format!("{cell:<w$}  ", w = widths[i]));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn pads_columns_and_trims_lines() {
        let rows = [
            ["IMAGE", "PLATFORM", "TAGS"].map(String::from),
            ["api", "linux/arm/v7", ""].map(String::from),
        ];
        assert_eq!(
            super::render(&rows),
            "IMAGE  PLATFORM      TAGS\napi    linux/arm/v7\n"
        );
    }
}
