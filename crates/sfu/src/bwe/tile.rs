//! The layer a subscription's tile needs, from the source size and the tile size.

use super::MAX_LAYER;

/// The smallest layer that still covers a tile of `max_width` x `max_height` (each layer
/// halves both sides of the source), so the subscriber never gets more pixels than it shows
/// and never fewer than it needs; layer 0 when sizes are unknown or the tile is larger than
/// the source. A missing bound counts as "any size".
pub fn choose_layer(
    width: Option<u32>,
    height: Option<u32>,
    max_width: Option<u32>,
    max_height: Option<u32>,
) -> u8 {
    if max_width.is_none() && max_height.is_none() {
        return 0;
    }
    let covers = |l: u8| {
        let w_ok = match (width, max_width) {
            (Some(w), Some(m)) => (w >> l) >= m,
            (None, Some(_)) => l == 0,
            _ => true,
        };
        let h_ok = match (height, max_height) {
            (Some(h), Some(m)) => (h >> l) >= m,
            (None, Some(_)) => l == 0,
            _ => true,
        };
        w_ok && h_ok
    };
    (0..=MAX_LAYER).rev().find(|&l| covers(l)).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layer_choice_halves_per_layer() {
        let (w, h) = (Some(1280), Some(720));
        assert_eq!(choose_layer(w, h, None, None), 0);
        assert_eq!(choose_layer(w, h, Some(1280), Some(720)), 0);
        assert_eq!(choose_layer(w, h, Some(1920), Some(1080)), 0);
        assert_eq!(choose_layer(w, h, Some(640), Some(360)), 1);
        // A 400-wide tile needs the 640-wide layer: 320 would be upscaled and blurry.
        assert_eq!(choose_layer(w, h, Some(400), None), 1);
        assert_eq!(choose_layer(w, h, Some(320), Some(180)), 2);
        assert_eq!(choose_layer(w, h, Some(10), Some(10)), 2);
        assert_eq!(choose_layer(None, None, Some(10), Some(10)), 0);
    }
}
