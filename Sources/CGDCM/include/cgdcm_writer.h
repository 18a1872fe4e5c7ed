#ifndef CGDCM_WRITER_H
#define CGDCM_WRITER_H
/*
 * The DICOM-writing half of the GDCM shim: a "builder" handle collects data elements and one
 * 2-D unsigned 16-bit image with its patient-space geometry, then writes a Part 10 file in the
 * requested transfer syntax. Same conventions as cgdcm.h: failures return -1 / NULL and leave a
 * message in the thread-local last error (gd_last_error). Nothing time- or host-dependent is
 * written, so the same calls give the same bytes.
 */
#include <stddef.h>
#include <stdint.h>
#ifdef __cplusplus
extern "C" {
#endif

/** One DICOM file under construction (opaque). */
typedef void *gdw_builder;

/** Transfer syntaxes the builder can write; all lossless. */
typedef enum gdw_transfer_syntax {
    GDW_TS_EXPLICIT_LITTLE = 0,   /**< 1.2.840.10008.1.2.1 */
    GDW_TS_JPEG2000_LOSSLESS = 1, /**< 1.2.840.10008.1.2.4.90 */
    GDW_TS_JPEGLS_LOSSLESS = 2,   /**< 1.2.840.10008.1.2.4.80 */
    GDW_TS_RLE_LOSSLESS = 3,      /**< 1.2.840.10008.1.2.5 */
    GDW_TS_JPEG_LOSSLESS = 4,     /**< 1.2.840.10008.1.2.4.70 (process 14, selection value 1) */
} gdw_transfer_syntax;

/** A new, empty builder (free with gdw_builder_free); NULL on failure. */
gdw_builder gdw_builder_new(void);

/** Frees a builder (NULL is allowed). */
void gdw_builder_free(gdw_builder b);

/**
 * Sets (group,element) to a text value with the given two-letter VR ("LO", "DS", "UI", ...);
 * multiple values are separated by '\\' as in DICOM. Padding to even length is done here.
 * Returns 0, or -1 for an unknown VR.
 */
int gdw_builder_set_string(gdw_builder b, uint16_t group, uint16_t element, const char *vr, const char *value);

/**
 * Sets the image: rows x columns unsigned pixels (row-major, copied), bits_stored of 16 allocated,
 * MONOCHROME2; its ImagePositionPatient, ImageOrientationPatient (row direction then column
 * direction) and PixelSpacing as [row spacing, column spacing] in mm. Returns 0 or -1.
 */
int gdw_builder_set_image_u16(gdw_builder b, const uint16_t *pixels, uint32_t rows, uint32_t columns,
                              uint16_t bits_stored, const double position[3], const double orientation[6],
                              const double pixel_spacing[2]);

/** Writes the file at path in the given transfer syntax (JPEG 2000 needs at least 32 x 32 pixels).
 *  Returns 0, or -1 (see gd_last_error). */
int gdw_builder_write(gdw_builder b, const char *path, gdw_transfer_syntax syntax);

/** One frame of an enhanced multi-frame image and what its functional groups say about it. */
typedef struct gdw_frame {
    const uint16_t *pixels;    /**< rows x columns values, row-major (copied) */
    double position[3];        /**< Plane Position: ImagePositionPatient */
    double orientation[6];     /**< Plane Orientation: row direction, then column direction */
    double pixel_spacing[2];   /**< Pixel Measures: [row spacing, column spacing] in mm */
    double thickness;          /**< Pixel Measures: SliceThickness in mm */
    double slope, intercept;   /**< Pixel Value Transformation: real value = stored x slope + intercept */
    uint32_t stack_id;         /**< Frame Content: StackID (written as text) */
    uint32_t in_stack_position;/**< Frame Content: InStackPositionNumber, and the second dimension index */
} gdw_frame;

/** Functional groups the writer puts in the Shared Functional Groups Sequence (taken from the first frame;
 *  every frame must then agree); the others go into each frame's item. */
typedef enum gdw_shared_group {
    GDW_SHARED_ORIENTATION = 1,
    GDW_SHARED_PIXEL_MEASURES = 2,
    GDW_SHARED_TRANSFORMATION = 4,
} gdw_shared_group;

/** Appends a frame to the builder's enhanced image (all frames share rows, columns and bits stored). Returns 0 or -1. */
int gdw_builder_add_frame(gdw_builder b, const gdw_frame *frame, uint32_t rows, uint32_t columns, uint16_t bits_stored);

/**
 * Writes the builder's frames as one enhanced multi-frame file (the SOP class is the caller's (0008,0016)):
 * NumberOfFrames, the Shared and Per-frame Functional Groups (Plane Position and Frame Content per frame;
 * Plane Orientation, Pixel Measures and Pixel Value Transformation shared or per frame as `shared_groups`
 * says; a top-level EchoTime moves into the shared MR Echo macro), and every frame's pixels in `syntax`.
 * Returns 0, or -1 (see gd_last_error).
 */
int gdw_builder_write_enhanced(gdw_builder b, const char *path, gdw_transfer_syntax syntax, int shared_groups);

/**
 * Decodes the unsigned 16-bit pixels of the 2-D image at path (any transfer syntax GDCM reads) into
 * out, which holds capacity values: lets tests check that compressed files are lossless. Returns the
 * number of pixels, or -1 (not readable, not 16-bit unsigned, or larger than capacity).
 */
int64_t gdw_read_pixels_u16(const char *path, uint16_t *out, size_t capacity);

#ifdef __cplusplus
}
#endif
#endif
