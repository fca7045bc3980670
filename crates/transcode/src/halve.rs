//! Exact 2:1 downscaling of YUV 4:2:0 pictures by averaging 2×2 blocks.
//!
//! Camera layers are the source halved and quartered, so nearly every scale is an exact 2:1
//! step (720p → 360p, and 360p → 180p in the cascade). For that case a box filter is what
//! swscale's area filter computes, and written as plain loops over rows the compiler
//! vectorises it to a fraction of swscale's cost. Any other ratio goes to swscale.

use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame;

/// Whether [`halve`] can make `dst` from `src`: both YUV420P and every plane of `dst` exactly
/// half of `src`'s in both directions.
pub(crate) fn fits(src: &frame::Video, dst: &frame::Video) -> bool {
    src.format() == Pixel::YUV420P
        && dst.format() == Pixel::YUV420P
        && (0..3).all(|p| {
            src.plane_width(p) == 2 * dst.plane_width(p)
                && src.plane_height(p) == 2 * dst.plane_height(p)
        })
}

/// Average each 2×2 block of `src` into one pixel of `dst` (rounded). Call only when
/// [`fits`] says so; otherwise `dst` is left as it is.
pub(crate) fn halve(src: &frame::Video, dst: &mut frame::Video) {
    if !fits(src, dst) {
        return;
    }
    for p in 0..3 {
        let (w, h) = (dst.plane_width(p) as usize, dst.plane_height(p) as usize);
        let (s_stride, d_stride) = (src.stride(p), dst.stride(p));
        let s = src.data(p);
        let d = dst.data_mut(p);
        for y in 0..h {
            let r0 = &s[2 * y * s_stride..][..2 * w];
            let r1 = &s[(2 * y + 1) * s_stride..][..2 * w];
            halve_row(r0, r1, &mut d[y * d_stride..][..w]);
        }
    }
}

/// Output pixels per block: fixed-size arrays let the compiler unroll and vectorise.
const BLOCK: usize = 16;

fn halve_row(r0: &[u8], r1: &[u8], out: &mut [u8]) {
    let mut o_blocks = out.chunks_exact_mut(BLOCK);
    let mut a_blocks = r0.chunks_exact(2 * BLOCK);
    let mut b_blocks = r1.chunks_exact(2 * BLOCK);
    for ((o, a), b) in (&mut o_blocks).zip(&mut a_blocks).zip(&mut b_blocks) {
        let (Ok(o), Ok(a), Ok(b)) = (
            <&mut [u8; BLOCK]>::try_from(o),
            <&[u8; 2 * BLOCK]>::try_from(a),
            <&[u8; 2 * BLOCK]>::try_from(b),
        ) else {
            continue;
        };
        for i in 0..BLOCK {
            o[i] = mean4(a[2 * i], a[2 * i + 1], b[2 * i], b[2 * i + 1]);
        }
    }
    let rest = o_blocks.into_remainder();
    let (a, b) = (a_blocks.remainder(), b_blocks.remainder());
    for (i, o) in rest.iter_mut().enumerate() {
        *o = mean4(a[2 * i], a[2 * i + 1], b[2 * i], b[2 * i + 1]);
    }
}

fn mean4(a: u8, b: u8, c: u8, d: u8) -> u8 {
    ((u16::from(a) + u16::from(b) + u16::from(c) + u16::from(d) + 2) >> 2) as u8
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(w: u32, h: u32, f: impl Fn(usize, usize, usize) -> u8) -> frame::Video {
        let mut v = frame::Video::new(Pixel::YUV420P, w, h);
        for p in 0..3 {
            let (pw, ph, stride) = (v.plane_width(p), v.plane_height(p), v.stride(p));
            let d = v.data_mut(p);
            for y in 0..ph as usize {
                for x in 0..pw as usize {
                    d[y * stride + x] = f(p, x, y);
                }
            }
        }
        v
    }

    #[test]
    fn averages_each_two_by_two_block_rounded() {
        crate::init();
        let src = filled(8, 4, |p, x, y| (p * 50 + x * 3 + y * 10) as u8);
        let mut dst = frame::Video::new(Pixel::YUV420P, 4, 2);
        assert!(fits(&src, &dst));
        halve(&src, &mut dst);
        for p in 0..3 {
            for y in 0..dst.plane_height(p) as usize {
                for x in 0..dst.plane_width(p) as usize {
                    let px = |xx: usize, yy: usize| (p * 50 + xx * 3 + yy * 10) as u32;
                    let sum = px(2 * x, 2 * y)
                        + px(2 * x + 1, 2 * y)
                        + px(2 * x, 2 * y + 1)
                        + px(2 * x + 1, 2 * y + 1);
                    assert_eq!(
                        u32::from(dst.data(p)[y * dst.stride(p) + x]),
                        (sum + 2) / 4,
                        "plane {p} ({x},{y})"
                    );
                }
            }
        }
    }

    #[test]
    fn other_ratios_and_odd_chroma_do_not_fit() {
        crate::init();
        let src = frame::Video::new(Pixel::YUV420P, 1366, 768);
        assert!(!fits(&src, &frame::Video::new(Pixel::YUV420P, 682, 384)));
        assert!(!fits(&src, &frame::Video::new(Pixel::YUV420P, 340, 192)));
        let hd = frame::Video::new(Pixel::YUV420P, 1280, 720);
        assert!(fits(&hd, &frame::Video::new(Pixel::YUV420P, 640, 360)));
        // 640x360 → 320x180: chroma 320x180 → 160x90, exact.
        let l1 = frame::Video::new(Pixel::YUV420P, 640, 360);
        assert!(fits(&l1, &frame::Video::new(Pixel::YUV420P, 320, 180)));
        // 320x180 → 160x90: chroma 160x90 → 80x45, exact; 160x90 → 80x45 is not (chroma 40x23).
        let l2 = frame::Video::new(Pixel::YUV420P, 160, 90);
        assert!(!fits(&l2, &frame::Video::new(Pixel::YUV420P, 80, 44)));
    }
}
