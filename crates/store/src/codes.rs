use crate::secrets::fill_random;

/// A new meeting code shaped like `abc-defg-hij`: ten letters drawn uniformly from a-z by
/// rejection sampling from the CSPRNG, 26^10 ≈ 2^47 possibilities.
pub fn new_meeting_code() -> String {
    let mut letters = [0u8; 10];
    let mut filled = 0;
    let mut buf = [0u8; 32];
    while filled < letters.len() {
        fill_random(&mut buf);
        for &b in &buf {
            // 234 = 9 * 26: reject the top values so every letter is equally likely.
            if b < 234 && filled < letters.len() {
                letters[filled] = b'a' + (b % 26);
                filled += 1;
            }
        }
    }
    let s = |r: std::ops::Range<usize>| {
        std::str::from_utf8(&letters[r])
            .unwrap_or_default()
            .to_owned()
    };
    format!("{}-{}-{}", s(0..3), s(3..7), s(7..10))
}

/// Whether `s` has the shape of a meeting code (`abc-defg-hij`, lower-case letters).
pub fn is_meeting_code(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 12
        && b.iter().enumerate().all(|(i, &c)| match i {
            3 | 8 => c == b'-',
            _ => c.is_ascii_lowercase(),
        })
}
