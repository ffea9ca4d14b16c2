/// Input tokens estimated from a prompt: ceil(words × 1.3), words split on whitespace.
pub fn input_tokens(prompt: &str) -> i64 {
    let words = prompt.split_whitespace().count() as i64;
    (words * 13 + 9) / 10
}

/// The spec's estimate: input estimated from the prompt plus the requested `max_tokens`.
pub fn estimate(prompt: &str, max_tokens: i64) -> i64 {
    input_tokens(prompt).saturating_add(max_tokens)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_times_one_point_three_rounded_up() {
        assert_eq!(input_tokens(""), 0);
        assert_eq!(input_tokens("one"), 2);
        assert_eq!(
            input_tokens("one two three four five six seven eight nine ten"),
            13
        );
        assert_eq!(input_tokens("  spaced\n\tout  words "), 4);
        assert_eq!(estimate("a b c", 100), 104);
    }
}
