// The DICOM-writing half of the GDCM shim (cgdcm_writer.h).
#include "cgdcm_writer.h"
#include "shim_common.hpp"

#include <gdcmDataElement.h>
#include <gdcmFile.h>
#include <gdcmImage.h>
#include <gdcmImageChangeTransferSyntax.h>
#include <gdcmImageReader.h>
#include <gdcmImageWriter.h>
#include <gdcmPhotometricInterpretation.h>
#include <gdcmPixelFormat.h>
#include <gdcmTransferSyntax.h>
#include <gdcmVR.h>

#include <cerrno>
#include <fstream>
#include <stdexcept>
#include <vector>

namespace {

/// What a builder has collected so far; the GDCM objects are made only when writing.
struct Builder {
    std::vector<gdcm::DataElement> elements;
    std::vector<uint16_t> pixels;
    uint32_t rows = 0, columns = 0;
    uint16_t bitsStored = 16;
    double position[3] = {0, 0, 0};
    double orientation[6] = {1, 0, 0, 0, 1, 0};
    double spacing[2] = {1, 1};
};

/// The numeric value of a text element the builder holds, or `fallback`.
double numericElement(const Builder &b, gdcm::Tag tag, double fallback) {
    for (const auto &e : b.elements) {
        if (e.GetTag() != tag || e.IsEmpty()) continue;
        const gdcm::ByteValue *bv = e.GetByteValue();
        return std::stod(std::string(bv->GetPointer(), bv->GetLength()));
    }
    return fallback;
}

gdcm::TransferSyntax::TSType syntaxType(gdw_transfer_syntax s) {
    switch (s) {
    case GDW_TS_EXPLICIT_LITTLE: return gdcm::TransferSyntax::ExplicitVRLittleEndian;
    case GDW_TS_JPEG2000_LOSSLESS: return gdcm::TransferSyntax::JPEG2000Lossless;
    case GDW_TS_JPEGLS_LOSSLESS: return gdcm::TransferSyntax::JPEGLSLossless;
    case GDW_TS_RLE_LOSSLESS: return gdcm::TransferSyntax::RLELossless;
    case GDW_TS_JPEG_LOSSLESS: return gdcm::TransferSyntax::JPEGLosslessProcess14_1;
    }
    throw std::runtime_error("unknown transfer syntax " + std::to_string(static_cast<int>(s)));
}

/// Fills `image` (owned by the writer) from the builder: pixel module and geometry.
void fillImage(const Builder &b, gdcm::Image &image) {
    image.SetNumberOfDimensions(2);
    const unsigned int dims[2] = {b.columns, b.rows};
    image.SetDimensions(dims);
    gdcm::PixelFormat pf(1, 16, b.bitsStored, static_cast<unsigned short>(b.bitsStored - 1), 0);
    image.SetPixelFormat(pf);
    image.SetPhotometricInterpretation(gdcm::PhotometricInterpretation::MONOCHROME2);
    image.SetTransferSyntax(gdcm::TransferSyntax::ExplicitVRLittleEndian);
    // SetOrigin(const double[3]) keeps only NumberOfDimensions (2) values and would drop z.
    for (unsigned int i = 0; i < 3; ++i) image.SetOrigin(i, b.position[i]);
    image.SetDirectionCosines(b.orientation);
    // GDCM's spacing is (x = along a row = column spacing, y = row spacing); DICOM's is the reverse.
    image.SetSpacing(0, b.spacing[1]);
    image.SetSpacing(1, b.spacing[0]);
    // GDCM writes the third spacing as SpacingBetweenSlices: keep the caller's value (or the thickness).
    image.SetSpacing(2, numericElement(b, gdcm::Tag(0x0018, 0x0088), numericElement(b, gdcm::Tag(0x0018, 0x0050), 1)));
    gdcm::DataElement pixelData(gdcm::Tag(0x7fe0, 0x0010));
    pixelData.SetVR(gdcm::VR::OW);
    pixelData.SetByteValue(reinterpret_cast<const char *>(b.pixels.data()),
                           static_cast<uint32_t>(b.pixels.size() * sizeof(uint16_t)));
    image.SetDataElement(pixelData);
}

}  // namespace

extern "C" gdw_builder gdw_builder_new(void) {
    GD_PROTECT(return new Builder();)
    return nullptr;
}

extern "C" void gdw_builder_free(gdw_builder b) { delete static_cast<Builder *>(b); }

extern "C" int gdw_builder_set_string(gdw_builder b, uint16_t group, uint16_t element, const char *vr,
                                      const char *value) {
    GD_PROTECT({
        const gdcm::VR::VRType type = gdcm::VR::GetVRType(vr);
        if (type == gdcm::VR::INVALID || type == gdcm::VR::VR_END || !(type & gdcm::VR::VRASCII))
            throw std::runtime_error(std::string("not a text VR: ") + vr);
        std::string text(value);
        // DICOM values have even length: UIDs pad with NUL, other text with a space.
        if (text.size() % 2) text.push_back(type == gdcm::VR::UI ? '\0' : ' ');
        gdcm::DataElement de(gdcm::Tag(group, element));
        de.SetVR(type);
        de.SetByteValue(text.data(), static_cast<uint32_t>(text.size()));
        auto &elements = static_cast<Builder *>(b)->elements;
        for (auto &e : elements)
            if (e.GetTag() == de.GetTag()) { e = de; return 0; }
        elements.push_back(de);
        return 0;
    })
    return -1;
}

extern "C" int gdw_builder_set_image_u16(gdw_builder b, const uint16_t *pixels, uint32_t rows, uint32_t columns,
                                         uint16_t bits_stored, const double position[3],
                                         const double orientation[6], const double pixel_spacing[2]) {
    GD_PROTECT({
        if (rows == 0 || columns == 0) throw std::runtime_error("image has no pixels");
        if (bits_stored < 8 || bits_stored > 16) throw std::runtime_error("bits stored must be 8...16");
        auto *builder = static_cast<Builder *>(b);
        builder->pixels.assign(pixels, pixels + static_cast<size_t>(rows) * columns);
        builder->rows = rows;
        builder->columns = columns;
        builder->bitsStored = bits_stored;
        for (int i = 0; i < 3; ++i) builder->position[i] = position[i];
        for (int i = 0; i < 6; ++i) builder->orientation[i] = orientation[i];
        builder->spacing[0] = pixel_spacing[0];
        builder->spacing[1] = pixel_spacing[1];
        return 0;
    })
    return -1;
}

extern "C" int gdw_builder_write(gdw_builder b, const char *path, gdw_transfer_syntax syntax) {
    GD_PROTECT({
        const auto *builder = static_cast<const Builder *>(b);
        if (builder->pixels.empty()) throw std::runtime_error(std::string(path) + ": no image set");
        gdcm::ImageWriter writer;
        gdcm::DataSet &ds = writer.GetFile().GetDataSet();
        for (const auto &e : builder->elements) ds.Replace(e);
        // GDCM reads the photometric interpretation back from the data set while writing (and warns when absent).
        gdcm::DataElement photometric(gdcm::Tag(0x0028, 0x0004));
        photometric.SetVR(gdcm::VR::CS);
        photometric.SetByteValue("MONOCHROME2 ", 12);
        ds.Replace(photometric);
        fillImage(*builder, writer.GetImage());
        // The filter owns the re-encoded image, so it must outlive the write.
        gdcm::ImageChangeTransferSyntax change;
        // OpenJPEG's default 6 resolution levels need 2^5 pixels a side; smaller images crash it.
        if (syntax == GDW_TS_JPEG2000_LOSSLESS && (builder->rows < 32 || builder->columns < 32))
            throw std::runtime_error(std::string(path) + ": JPEG 2000 needs at least 32 x 32 pixels");
        if (syntax != GDW_TS_EXPLICIT_LITTLE) {
            change.SetTransferSyntax(syntaxType(syntax));
            change.SetInput(writer.GetImage());
            if (!change.Change())
                throw std::runtime_error(std::string(path) + ": GDCM could not encode the pixels in transfer syntax " +
                                         gdcm::TransferSyntax(syntaxType(syntax)).GetString());
            writer.SetImage(change.GetOutput());
        }
        // GDCM asserts (aborts) when it cannot open a file name itself, so open the stream here.
        std::ofstream out(path, std::ios::binary | std::ios::trunc);
        if (!out) throw std::runtime_error(std::string(path) + ": cannot create the file: " + std::strerror(errno));
        writer.SetStream(out);
        if (!writer.Write() || !out.flush()) throw std::runtime_error(std::string(path) + ": GDCM could not write the file");
        return 0;
    })
    return -1;
}

extern "C" int64_t gdw_read_pixels_u16(const char *path, uint16_t *out, size_t capacity) {
    GD_PROTECT({
        std::ifstream in(path, std::ios::binary);
        if (!in) throw std::runtime_error(std::string(path) + ": cannot open the file: " + std::strerror(errno));
        gdcm::ImageReader reader;
        reader.SetStream(in);
        if (!reader.Read()) throw std::runtime_error(std::string(path) + ": GDCM could not read the file");
        const gdcm::Image &image = reader.GetImage();
        const gdcm::PixelFormat pf = image.GetPixelFormat();
        if (pf.GetBitsAllocated() != 16 || pf.GetPixelRepresentation() != 0 || pf.GetSamplesPerPixel() != 1)
            throw std::runtime_error(std::string(path) + ": not a 16-bit unsigned grey image");
        const size_t length = image.GetBufferLength();
        if (length / sizeof(uint16_t) > capacity)
            throw std::runtime_error(std::string(path) + ": image larger than the buffer given");
        if (!image.GetBuffer(reinterpret_cast<char *>(out)))
            throw std::runtime_error(std::string(path) + ": GDCM could not decode the pixels");
        return static_cast<int64_t>(length / sizeof(uint16_t));
    })
    return -1;
}
