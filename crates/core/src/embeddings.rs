use serde::{Deserialize, Serialize};

use crate::CoreError;

/// An `n × d` matrix of `f32` embeddings stored row-major: one row per frame or image.
///
/// An empty matrix (`n == 0`) still knows its dimension.
///
/// ```
/// use reelsmith_core::Embeddings;
/// let mut e = Embeddings::new(vec![3.0, 4.0, 0.0, 0.0], 2).unwrap();
/// e.l2_normalize();
/// assert_eq!(e.row(0), &[0.6, 0.8]);
/// assert_eq!(e.row(1), &[0.0, 0.0]); // zero rows stay zero
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawEmbeddings")]
pub struct Embeddings {
    data: Vec<f32>,
    dim: usize,
}

/// Unchecked serde form, validated through [`Embeddings::new`] on the way in.
#[derive(Deserialize)]
struct RawEmbeddings {
    data: Vec<f32>,
    dim: usize,
}

impl TryFrom<RawEmbeddings> for Embeddings {
    type Error = CoreError;
    fn try_from(raw: RawEmbeddings) -> Result<Self, CoreError> {
        Embeddings::new(raw.data, raw.dim)
    }
}

impl Embeddings {
    /// Wraps flat row-major data of rows of width `dim`.
    pub fn new(data: Vec<f32>, dim: usize) -> Result<Self, CoreError> {
        if dim == 0 {
            return Err(CoreError::ZeroDimension);
        }
        if !data.len().is_multiple_of(dim) {
            return Err(CoreError::ShapeMismatch {
                len: data.len(),
                dim,
            });
        }
        Ok(Self { data, dim })
    }

    /// An empty matrix with rows of width `dim`.
    pub fn empty(dim: usize) -> Result<Self, CoreError> {
        Self::new(Vec::new(), dim)
    }

    /// Builds a matrix from equally long rows. An empty slice is an error because the
    /// dimension would be unknown; use [`Embeddings::empty`] for that.
    pub fn from_rows<R: AsRef<[f32]>>(rows: &[R]) -> Result<Self, CoreError> {
        let dim = rows.first().map(|r| r.as_ref().len()).unwrap_or(0);
        if dim == 0 {
            return Err(CoreError::ZeroDimension);
        }
        let mut data = Vec::with_capacity(dim * rows.len());
        for (i, r) in rows.iter().enumerate() {
            let r = r.as_ref();
            if r.len() != dim {
                return Err(CoreError::RaggedRows {
                    row: i,
                    expected: dim,
                    got: r.len(),
                });
            }
            data.extend_from_slice(r);
        }
        Ok(Self { data, dim })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.data.len() / self.dim
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Width of each row.
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Row `i`. Panics when `i >= len()`, like slice indexing.
    pub fn row(&self, i: usize) -> &[f32] {
        &self.data[i * self.dim..(i + 1) * self.dim]
    }

    /// Row `i`, or `None` when out of range.
    pub fn get(&self, i: usize) -> Option<&[f32]> {
        if i < self.len() {
            Some(self.row(i))
        } else {
            None
        }
    }

    /// Iterates over the rows.
    pub fn rows(&self) -> std::slice::ChunksExact<'_, f32> {
        self.data.chunks_exact(self.dim)
    }

    /// The flat row-major data.
    pub fn as_slice(&self) -> &[f32] {
        &self.data
    }

    /// Consumes the matrix and returns the flat row-major data.
    pub fn into_vec(self) -> Vec<f32> {
        self.data
    }

    /// Appends one row. Fails when its width differs from [`Embeddings::dim`].
    pub fn push(&mut self, row: &[f32]) -> Result<(), CoreError> {
        if row.len() != self.dim {
            return Err(CoreError::RaggedRows {
                row: self.len(),
                expected: self.dim,
                got: row.len(),
            });
        }
        self.data.extend_from_slice(row);
        Ok(())
    }

    /// Appends every row of `other`. Fails when the dimensions differ.
    pub fn extend(&mut self, other: &Embeddings) -> Result<(), CoreError> {
        if other.dim != self.dim {
            return Err(CoreError::RaggedRows {
                row: self.len(),
                expected: self.dim,
                got: other.dim,
            });
        }
        self.data.extend_from_slice(&other.data);
        Ok(())
    }

    /// A new matrix with the rows at `indices`, in that order. Panics on an out-of-range index.
    pub fn select(&self, indices: &[usize]) -> Embeddings {
        let mut data = Vec::with_capacity(indices.len() * self.dim);
        for &i in indices {
            data.extend_from_slice(self.row(i));
        }
        Embeddings {
            data,
            dim: self.dim,
        }
    }

    /// Scales every row to unit Euclidean length in place. All-zero rows are left as they are.
    pub fn l2_normalize(&mut self) {
        let dim = self.dim;
        for r in self.data.chunks_exact_mut(dim) {
            let n = l2_norm(r);
            if n > 0.0 && n.is_finite() {
                r.iter_mut().for_each(|v| *v /= n);
            }
        }
    }

    /// A copy with every row scaled to unit length (see [`Embeddings::l2_normalize`]).
    pub fn l2_normalized(&self) -> Embeddings {
        let mut e = self.clone();
        e.l2_normalize();
        e
    }

    /// The mean of the rows in `range` (all rows when `None`), or `None` when that is empty.
    pub fn mean(&self, range: Option<std::ops::Range<usize>>) -> Option<Vec<f32>> {
        let range = range.unwrap_or(0..self.len());
        if range.is_empty() || range.end > self.len() {
            return None;
        }
        let mut acc = vec![0f64; self.dim];
        for i in range.clone() {
            for (a, v) in acc.iter_mut().zip(self.row(i)) {
                *a += f64::from(*v);
            }
        }
        let n = range.len() as f64;
        Some(acc.into_iter().map(|a| (a / n) as f32).collect())
    }

    /// Cosine similarity of rows `i` and `j` (0 when either row is all zeros).
    pub fn cosine_similarity(&self, i: usize, j: usize) -> f32 {
        cosine_similarity(self.row(i), self.row(j))
    }

    /// Cosine distance `1 − cosine similarity` of rows `i` and `j`, in `[0, 2]`.
    pub fn cosine_distance(&self, i: usize, j: usize) -> f32 {
        1.0 - self.cosine_similarity(i, j)
    }
}

/// Dot product of two equally long vectors, accumulated in `f64`.
pub fn dot(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| f64::from(*x) * f64::from(*y))
        .sum::<f64>() as f32
}

/// Euclidean length of a vector, accumulated in `f64`.
pub fn l2_norm(a: &[f32]) -> f32 {
    a.iter()
        .map(|x| f64::from(*x) * f64::from(*x))
        .sum::<f64>()
        .sqrt() as f32
}

/// Cosine similarity of two vectors; 0 when either has zero length.
pub fn cosine_similarity(a: &[f32], b: &[f32]) -> f32 {
    let (na, nb) = (l2_norm(a), l2_norm(b));
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    (dot(a, b) / (na * nb)).clamp(-1.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_errors() {
        assert_eq!(
            Embeddings::new(vec![1.0; 5], 2),
            Err(CoreError::ShapeMismatch { len: 5, dim: 2 })
        );
        assert_eq!(Embeddings::new(vec![], 0), Err(CoreError::ZeroDimension));
        let rows: Vec<Vec<f32>> = vec![vec![1.0, 2.0], vec![3.0]];
        assert_eq!(
            Embeddings::from_rows(&rows),
            Err(CoreError::RaggedRows {
                row: 1,
                expected: 2,
                got: 1
            })
        );
    }

    #[test]
    fn rows_select_mean() {
        let e = Embeddings::from_rows(&[[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]).unwrap();
        assert_eq!(e.len(), 3);
        assert_eq!(e.rows().nth(2).unwrap(), &[5.0, 6.0]);
        assert_eq!(e.select(&[2, 0]).as_slice(), &[5.0, 6.0, 1.0, 2.0]);
        assert_eq!(e.mean(None).unwrap(), vec![3.0, 4.0]);
        assert_eq!(e.mean(Some(1..3)).unwrap(), vec![4.0, 5.0]);
        assert_eq!(e.mean(Some(1..1)), None);
        assert_eq!(e.mean(Some(2..4)), None);
        assert_eq!(e.get(3), None);
    }

    #[test]
    fn push_and_extend_check_dims() {
        let mut e = Embeddings::empty(2).unwrap();
        assert!(e.is_empty());
        e.push(&[1.0, 1.0]).unwrap();
        assert!(e.push(&[1.0]).is_err());
        let other = Embeddings::empty(3).unwrap();
        assert!(e.extend(&other).is_err());
        e.extend(&e.clone()).unwrap();
        assert_eq!(e.len(), 2);
    }

    #[test]
    fn cosine() {
        let e = Embeddings::from_rows(&[[1.0, 0.0], [0.0, 1.0], [-2.0, 0.0], [0.0, 0.0]]).unwrap();
        assert_eq!(e.cosine_similarity(0, 1), 0.0);
        assert_eq!(e.cosine_distance(0, 2), 2.0);
        assert_eq!(e.cosine_similarity(0, 3), 0.0);
        assert!((e.cosine_similarity(0, 0) - 1.0).abs() < 1e-7);
    }

    #[test]
    fn serde_roundtrip() {
        let e = Embeddings::from_rows(&[[1.5, -2.0]]).unwrap();
        let s = serde_json::to_string(&e).unwrap();
        let back: Embeddings = serde_json::from_str(&s).unwrap();
        assert_eq!(back, e);
        let bad: Result<Embeddings, _> = serde_json::from_str(r#"{"data":[1.0,2.0,3.0],"dim":2}"#);
        assert!(bad.is_err());
    }
}
