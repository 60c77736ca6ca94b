//! Pictures for people: maximum-intensity projections and sections of volumes, outlines of
//! label maps, small text labels, saved as PNG.
//!
//! Views follow the radiological convention for LPS volumes: coronal pictures look at the
//! patient from the front (patient right on the picture's left, head up), sagittal ones from
//! the patient's left (anterior on the left, head up). Pictures are resampled to square pixels so anatomy keeps its
//! proportions whatever the voxel size.

use std::path::Path;

use uptake::volume::Volume;

/// Why a picture could not be made or saved.
#[derive(Debug, thiserror::Error)]
pub enum PictureError {
    #[error("cannot save {path}: {message}")]
    Save { path: String, message: String },
    #[error("section index {index} is outside the {len} planes of this view")]
    OutOfRange { index: usize, len: usize },
    #[error("picture of {width} × {height} pixels is empty or too large")]
    BadSize { width: usize, height: usize },
}

/// A view direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum View {
    /// Projection or section along y (anterior–posterior).
    Coronal,
    /// Along x (right–left).
    Sagittal,
}

impl View {
    /// The volume axis looked along, and the volume axes of picture columns and rows.
    fn axes(self) -> (usize, usize, usize) {
        match self {
            View::Coronal => (1, 0, 2),
            View::Sagittal => (0, 1, 2),
        }
    }
}

/// A 2-D array of values with its pixel size in mm (columns, rows).
#[derive(Debug, Clone, PartialEq)]
pub struct Plane<T> {
    pub width: usize,
    pub height: usize,
    pub data: Vec<T>,
    pub pixel_mm: [f64; 2],
}

impl<T: Copy> Plane<T> {
    pub fn get(&self, col: usize, row: usize) -> T {
        self.data[row * self.width + col]
    }

    /// Nearest-neighbour resampling to square pixels of `mm` (labels stay labels).
    pub fn square_pixels(&self, mm: f64) -> Plane<T> {
        let w = ((self.width as f64 * self.pixel_mm[0] / mm).round() as usize)
            .clamp(1, Image::MAX_SIDE);
        let h = ((self.height as f64 * self.pixel_mm[1] / mm).round() as usize)
            .clamp(1, Image::MAX_SIDE);
        let mut data = Vec::with_capacity(w * h);
        for r in 0..h {
            let sr = (((r as f64 + 0.5) * mm / self.pixel_mm[1]) as usize).min(self.height - 1);
            for c in 0..w {
                let sc = (((c as f64 + 0.5) * mm / self.pixel_mm[0]) as usize).min(self.width - 1);
                data.push(self.data[sr * self.width + sc]);
            }
        }
        Plane {
            width: w,
            height: h,
            data,
            pixel_mm: [mm, mm],
        }
    }
}

/// Walks the picture pixels of a view: calls `f(picture index, volume indices along the ray)`.
fn for_each_ray<T>(
    volume: &Volume<T>,
    view: View,
    mut f: impl FnMut(usize, &mut dyn Iterator<Item = usize>),
) -> (usize, usize, [f64; 2]) {
    let g = volume.geometry();
    let dims = g.dims();
    let s = g.spacing_mm();
    let (along, col_axis, row_axis) = view.axes();
    let (w, h) = (dims[col_axis], dims[row_axis]);
    for r in 0..h {
        // Head up: picture rows run from high z down.
        let row_index = h - 1 - r;
        for c in 0..w {
            let mut ijk = [0usize; 3];
            ijk[col_axis] = c;
            ijk[row_axis] = row_index;
            let mut ray = (0..dims[along]).map(move |t| {
                let mut v = ijk;
                v[along] = t;
                v[0] + dims[0] * (v[1] + dims[1] * v[2])
            });
            f(r * w + c, &mut ray);
        }
    }
    (w, h, [s[col_axis], s[row_axis]])
}

/// Maximum-intensity projection of a volume along a view.
pub fn mip(volume: &Volume<f32>, view: View) -> Plane<f32> {
    let data = volume.data();
    let mut out = Vec::new();
    let (w, h, px) = for_each_ray(volume, view, |_, ray| {
        out.push(ray.map(|i| data[i]).fold(f32::NEG_INFINITY, f32::max));
    });
    Plane {
        width: w,
        height: h,
        data: out,
        pixel_mm: px,
    }
}

/// For each picture pixel, the label found along the ray where `weight` (e.g. the PET) is
/// largest among labelled voxels, 0 if the ray meets no label. For outlining lesions on a MIP.
pub fn project_labels(labels: &Volume<u16>, weight: &Volume<f32>, view: View) -> Plane<u16> {
    let l = labels.data();
    let wgt = weight.data();
    let mut out = Vec::new();
    let (w, h, px) = for_each_ray(labels, view, |_, ray| {
        let best = ray
            .filter(|&i| l[i] != 0)
            .max_by(|&a, &b| wgt[a].total_cmp(&wgt[b]).then(b.cmp(&a)))
            .map(|i| l[i])
            .unwrap_or(0);
        out.push(best);
    });
    Plane {
        width: w,
        height: h,
        data: out,
        pixel_mm: px,
    }
}

/// The section of a volume at `index` along the view's axis.
pub fn section<T: Copy>(
    volume: &Volume<T>,
    view: View,
    index: usize,
) -> Result<Plane<T>, PictureError> {
    let dims = volume.dims();
    let (along, _, _) = view.axes();
    if index >= dims[along] {
        return Err(PictureError::OutOfRange {
            index,
            len: dims[along],
        });
    }
    let data = volume.data();
    let mut out = Vec::new();
    let (w, h, px) = for_each_ray(volume, view, |_, ray| {
        if let Some(i) = ray.nth(index) {
            out.push(data[i]);
        }
    });
    Ok(Plane {
        width: w,
        height: h,
        data: out,
        pixel_mm: px,
    })
}

/// An RGB picture.
#[derive(Debug, Clone, PartialEq)]
pub struct Image {
    pub width: usize,
    pub height: usize,
    pub pixels: Vec<[u8; 3]>,
}

impl Image {
    /// Largest picture side accepted, in pixels (crate-visible: the C header generator leaves
    /// it out).
    pub(crate) const MAX_SIDE: usize = 16384;

    pub fn new(width: usize, height: usize, fill: [u8; 3]) -> Result<Image, PictureError> {
        if width == 0 || height == 0 || width > Image::MAX_SIDE || height > Image::MAX_SIDE {
            return Err(PictureError::BadSize { width, height });
        }
        Ok(Image {
            width,
            height,
            pixels: vec![fill; width * height],
        })
    }

    /// Grey levels of a plane between `lo` (black) and `hi` (white); `invert` swaps them, as
    /// PET MIPs are usually shown (dark uptake on white).
    pub fn grey(plane: &Plane<f32>, lo: f32, hi: f32, invert: bool) -> Image {
        let span = (hi - lo).max(f32::MIN_POSITIVE);
        let pixels = plane
            .data
            .iter()
            .map(|&v| {
                let t = ((v - lo) / span).clamp(0.0, 1.0);
                let t = if t.is_nan() { 0.0 } else { t };
                let g = ((if invert { 1.0 - t } else { t }) * 255.0).round() as u8;
                [g, g, g]
            })
            .collect();
        Image {
            width: plane.width,
            height: plane.height,
            pixels,
        }
    }

    pub fn set(&mut self, x: i64, y: i64, colour: [u8; 3]) {
        if x >= 0 && y >= 0 && (x as usize) < self.width && (y as usize) < self.height {
            self.pixels[y as usize * self.width + x as usize] = colour;
        }
    }

    /// Colours the boundary pixels of every non-zero label region of `labels` (same size as
    /// the picture): a pixel is on the boundary when a 4-neighbour carries another label.
    pub fn outline(&mut self, labels: &Plane<u16>, colour: impl Fn(u16) -> [u8; 3]) {
        let (w, h) = (labels.width.min(self.width), labels.height.min(self.height));
        for y in 0..h {
            for x in 0..w {
                let l = labels.get(x, y);
                if l == 0 {
                    continue;
                }
                let edge = x == 0
                    || y == 0
                    || x + 1 == w
                    || y + 1 == h
                    || labels.get(x - 1, y) != l
                    || labels.get(x + 1, y) != l
                    || labels.get(x, y - 1) != l
                    || labels.get(x, y + 1) != l;
                if edge {
                    self.set(x as i64, y as i64, colour(l));
                }
            }
        }
    }

    /// Copies `other` with its top-left corner at (x, y), clipped.
    pub fn blit(&mut self, other: &Image, x: usize, y: usize) {
        for r in 0..other.height {
            for c in 0..other.width {
                self.set(
                    (x + c) as i64,
                    (y + r) as i64,
                    other.pixels[r * other.width + c],
                );
            }
        }
    }

    /// Panels side by side on a background, each with a caption above it.
    pub fn row(
        panels: &[(&Image, &str)],
        gap: usize,
        background: [u8; 3],
        ink: [u8; 3],
    ) -> Result<Image, PictureError> {
        let caption_h = 7 * 2 + 8;
        let width = panels.iter().map(|p| p.0.width).sum::<usize>() + gap * (panels.len() + 1);
        let height = panels.iter().map(|p| p.0.height).max().unwrap_or(0) + caption_h + gap;
        let mut out = Image::new(width, height, background)?;
        let mut x = gap;
        for (img, caption) in panels {
            out.text(x as i64, 4, caption, ink, 2);
            out.blit(img, x, caption_h);
            x += img.width + gap;
        }
        Ok(out)
    }

    /// Draws text with the built-in 5 × 7 font, `scale` pixels per font pixel. Lowercase is
    /// drawn as uppercase; characters without a glyph as '?'.
    pub fn text(&mut self, x: i64, y: i64, text: &str, colour: [u8; 3], scale: usize) {
        let scale = scale.max(1) as i64;
        let mut cx = x;
        for ch in text.chars() {
            if ch == '\n' {
                continue;
            }
            let rows = glyph(ch);
            for (r, bits) in rows.iter().enumerate() {
                for c in 0..5 {
                    if bits & (0x10 >> c) != 0 {
                        for dy in 0..scale {
                            for dx in 0..scale {
                                self.set(cx + c * scale + dx, y + r as i64 * scale + dy, colour);
                            }
                        }
                    }
                }
            }
            cx += 6 * scale;
        }
    }

    /// Width in pixels of `text` drawn at `scale`.
    pub fn text_width(text: &str, scale: usize) -> usize {
        text.chars().count() * 6 * scale.max(1)
    }

    pub fn save_png(&self, path: impl AsRef<Path>) -> Result<(), PictureError> {
        let path = path.as_ref();
        let fail = |message: String| PictureError::Save {
            path: path.display().to_string(),
            message,
        };
        let raw: Vec<u8> = self.pixels.iter().flatten().copied().collect();
        let img = image::RgbImage::from_raw(self.width as u32, self.height as u32, raw)
            .ok_or_else(|| fail("pixel buffer does not match the size".into()))?;
        img.save_with_format(path, image::ImageFormat::Png)
            .map_err(|e| fail(e.to_string()))
    }
}

/// 5 × 7 glyph rows (bit 4 = leftmost column).
fn glyph(ch: char) -> [u8; 7] {
    match ch.to_ascii_uppercase() {
        '0' => [0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E],
        '1' => [0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E],
        '2' => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F],
        '3' => [0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E],
        '4' => [0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02],
        '5' => [0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E],
        '6' => [0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E],
        '7' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08],
        '8' => [0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E],
        '9' => [0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C],
        'A' => [0x0E, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'B' => [0x1E, 0x11, 0x11, 0x1E, 0x11, 0x11, 0x1E],
        'C' => [0x0E, 0x11, 0x10, 0x10, 0x10, 0x11, 0x0E],
        'D' => [0x1C, 0x12, 0x11, 0x11, 0x11, 0x12, 0x1C],
        'E' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x1F],
        'F' => [0x1F, 0x10, 0x10, 0x1E, 0x10, 0x10, 0x10],
        'G' => [0x0E, 0x11, 0x10, 0x17, 0x11, 0x11, 0x0F],
        'H' => [0x11, 0x11, 0x11, 0x1F, 0x11, 0x11, 0x11],
        'I' => [0x0E, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E],
        'J' => [0x07, 0x02, 0x02, 0x02, 0x02, 0x12, 0x0C],
        'K' => [0x11, 0x12, 0x14, 0x18, 0x14, 0x12, 0x11],
        'L' => [0x10, 0x10, 0x10, 0x10, 0x10, 0x10, 0x1F],
        'M' => [0x11, 0x1B, 0x15, 0x15, 0x11, 0x11, 0x11],
        'N' => [0x11, 0x11, 0x19, 0x15, 0x13, 0x11, 0x11],
        'O' => [0x0E, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'P' => [0x1E, 0x11, 0x11, 0x1E, 0x10, 0x10, 0x10],
        'Q' => [0x0E, 0x11, 0x11, 0x11, 0x15, 0x12, 0x0D],
        'R' => [0x1E, 0x11, 0x11, 0x1E, 0x14, 0x12, 0x11],
        'S' => [0x0F, 0x10, 0x10, 0x0E, 0x01, 0x01, 0x1E],
        'T' => [0x1F, 0x04, 0x04, 0x04, 0x04, 0x04, 0x04],
        'U' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x0E],
        'V' => [0x11, 0x11, 0x11, 0x11, 0x11, 0x0A, 0x04],
        'W' => [0x11, 0x11, 0x11, 0x15, 0x15, 0x15, 0x0A],
        'X' => [0x11, 0x11, 0x0A, 0x04, 0x0A, 0x11, 0x11],
        'Y' => [0x11, 0x11, 0x11, 0x0A, 0x04, 0x04, 0x04],
        'Z' => [0x1F, 0x01, 0x02, 0x04, 0x08, 0x10, 0x1F],
        ' ' => [0; 7],
        '.' => [0, 0, 0, 0, 0, 0x0C, 0x0C],
        ',' => [0, 0, 0, 0, 0x0C, 0x04, 0x08],
        ':' => [0, 0x0C, 0x0C, 0, 0x0C, 0x0C, 0],
        '-' => [0, 0, 0, 0x1F, 0, 0, 0],
        '+' => [0, 0x04, 0x04, 0x1F, 0x04, 0x04, 0],
        '/' => [0, 0x01, 0x02, 0x04, 0x08, 0x10, 0],
        '(' => [0x02, 0x04, 0x08, 0x08, 0x08, 0x04, 0x02],
        ')' => [0x08, 0x04, 0x02, 0x02, 0x02, 0x04, 0x08],
        '=' => [0, 0, 0x1F, 0, 0x1F, 0, 0],
        '%' => [0x18, 0x19, 0x02, 0x04, 0x08, 0x13, 0x03],
        '_' => [0, 0, 0, 0, 0, 0, 0x1F],
        '#' => [0x0A, 0x0A, 0x1F, 0x0A, 0x1F, 0x0A, 0x0A],
        _ => [0x0E, 0x11, 0x01, 0x02, 0x04, 0x00, 0x04],
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uptake::volume::Geometry;

    const WHITE: [u8; 3] = [255, 255, 255];
    const BLACK: [u8; 3] = [0, 0, 0];
    const RED: [u8; 3] = [230, 30, 30];

    fn volume() -> Volume<f32> {
        // 3 × 4 × 5, value = x + 10 y + 100 z.
        let g = Geometry::axis_aligned([3, 4, 5], [1.0, 2.0, 3.0], [0.0; 3]).unwrap();
        let data = (0..60)
            .map(|i| {
                let c = g.coords(i);
                (c[0] + 10 * c[1] + 100 * c[2]) as f32
            })
            .collect();
        Volume::new(g, data).unwrap()
    }

    #[test]
    fn coronal_mip_puts_the_head_up_and_patient_right_left() {
        let p = mip(&volume(), View::Coronal);
        assert_eq!((p.width, p.height), (3, 5));
        assert_eq!(p.pixel_mm, [1.0, 3.0]);
        // Top row is the highest z; max over y is y = 3.
        assert_eq!(p.get(0, 0), (30 + 400) as f32);
        assert_eq!(p.get(2, 4), (2 + 30) as f32);
    }

    #[test]
    fn sagittal_section_and_range_check() {
        let s = section(&volume(), View::Sagittal, 1).unwrap();
        assert_eq!((s.width, s.height), (4, 5));
        assert_eq!(s.get(3, 0), (1 + 30 + 400) as f32);
        assert!(section(&volume(), View::Sagittal, 3).is_err());
    }

    #[test]
    fn square_pixels_keep_proportions() {
        let p = mip(&volume(), View::Coronal).square_pixels(1.0);
        assert_eq!((p.width, p.height), (3, 15));
        assert_eq!(p.get(0, 0), p.get(0, 2));
    }

    #[test]
    fn outline_marks_only_region_borders() {
        let labels = Plane {
            width: 5,
            height: 5,
            data: (0..25)
                .map(|i| {
                    if (1..4).contains(&(i % 5)) && (1..4).contains(&(i / 5)) {
                        7
                    } else {
                        0
                    }
                })
                .collect(),
            pixel_mm: [1.0, 1.0],
        };
        let mut img = Image::new(5, 5, BLACK).unwrap();
        img.outline(&labels, |_| RED);
        assert_eq!(img.pixels[6], RED);
        assert_eq!(img.pixels[12], BLACK, "interior stays");
        assert_eq!(img.pixels[0], BLACK, "outside stays");
    }

    #[test]
    fn text_draws_inside_its_box() {
        let mut img = Image::new(40, 10, BLACK).unwrap();
        img.text(1, 1, "T+N1", WHITE, 1);
        let lit = img.pixels.iter().filter(|p| **p == WHITE).count();
        assert!(lit > 20);
        assert_eq!(Image::text_width("T+N1", 1), 24);
        assert!(Image::new(0, 3, BLACK).is_err());
    }
}
