// The DICOM-writing half of the GDCM shim (cgdcm_writer.h).
#include "cgdcm_writer.h"
#include "shim_common.hpp"

#include <gdcmAttribute.h>
#include <gdcmDataElement.h>
#include <gdcmFile.h>
#include <gdcmImage.h>
#include <gdcmImageChangeTransferSyntax.h>
#include <gdcmImageReader.h>
#include <gdcmImageWriter.h>
#include <gdcmPhotometricInterpretation.h>
#include <gdcmPixelFormat.h>
#include <gdcmSequenceOfItems.h>
#include <gdcmTransferSyntax.h>
#include <gdcmVR.h>
#include <gdcmWriter.h>

#include <cerrno>
#include <cstring>
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
    // An enhanced multi-frame image: every frame's functional-group values, pixels concatenated.
    std::vector<gdw_frame> frames;
    std::vector<uint16_t> framePixels;
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

/// Encodes `pixels` (frames x rows x columns, 16-bit) in `syntax`: the Pixel Data element to store.
gdcm::DataElement encodePixels(const std::vector<uint16_t> &pixels, uint32_t rows, uint32_t columns, uint32_t frames,
                               uint16_t bitsStored, gdw_transfer_syntax syntax, const char *path) {
    gdcm::DataElement pixelData(gdcm::Tag(0x7fe0, 0x0010));
    pixelData.SetVR(gdcm::VR::OW);
    pixelData.SetByteValue(reinterpret_cast<const char *>(pixels.data()), static_cast<uint32_t>(pixels.size() * sizeof(uint16_t)));
    if (syntax == GDW_TS_EXPLICIT_LITTLE) return pixelData;
    if (syntax == GDW_TS_JPEG2000_LOSSLESS && (rows < 32 || columns < 32))
        throw std::runtime_error(std::string(path) + ": JPEG 2000 needs at least 32 x 32 pixels");
    // On the heap: the filter holds its input through a reference-counted pointer and frees it.
    gdcm::SmartPointer<gdcm::Image> image = new gdcm::Image;
    image->SetNumberOfDimensions(3);
    const unsigned int dims[3] = {columns, rows, frames};
    image->SetDimensions(dims);
    image->SetPixelFormat(gdcm::PixelFormat(1, 16, bitsStored, static_cast<unsigned short>(bitsStored - 1), 0));
    image->SetPhotometricInterpretation(gdcm::PhotometricInterpretation::MONOCHROME2);
    image->SetTransferSyntax(gdcm::TransferSyntax::ExplicitVRLittleEndian);
    image->SetDataElement(pixelData);
    gdcm::ImageChangeTransferSyntax change;
    change.SetTransferSyntax(syntaxType(syntax));
    change.SetInput(*image);
    if (!change.Change())
        throw std::runtime_error(std::string(path) + ": GDCM could not encode the frames in transfer syntax " +
                                 gdcm::TransferSyntax(syntaxType(syntax)).GetString());
    return change.GetOutput().GetDataElement();
}

/// A sequence element holding the given items.
gdcm::DataElement sequence(gdcm::Tag tag, const std::vector<gdcm::DataSet> &items) {
    gdcm::SmartPointer<gdcm::SequenceOfItems> sq = new gdcm::SequenceOfItems;
    sq->SetLengthToUndefined();
    for (const auto &nested : items) {
        gdcm::Item item;
        item.SetVLToUndefined();
        item.SetNestedDataSet(nested);
        sq->AddItem(item);
    }
    gdcm::DataElement de(tag);
    de.SetVR(gdcm::VR::SQ);
    de.SetValue(*sq);
    de.SetVLToUndefined();
    return de;
}

/// A functional-group macro: a sequence of one item holding `content`.
void putMacro(gdcm::DataSet &group, gdcm::Tag tag, const gdcm::DataSet &content) { group.Replace(sequence(tag, {content})); }

gdcm::DataSet planePosition(const gdw_frame &f) {
    gdcm::DataSet ds;
    gdcm::Attribute<0x0020, 0x0032> ipp;
    ipp.SetValues(f.position);
    ds.Replace(ipp.GetAsDataElement());
    return ds;
}

gdcm::DataSet planeOrientation(const gdw_frame &f) {
    gdcm::DataSet ds;
    gdcm::Attribute<0x0020, 0x0037> iop;
    double o[6];
    for (int i = 0; i < 6; ++i) o[i] = f.orientation[i] + 0.0;  // never "-0"
    iop.SetValues(o);
    ds.Replace(iop.GetAsDataElement());
    return ds;
}

gdcm::DataSet pixelMeasures(const gdw_frame &f) {
    gdcm::DataSet ds;
    gdcm::Attribute<0x0028, 0x0030> spacing;
    spacing.SetValues(f.pixel_spacing);
    ds.Replace(spacing.GetAsDataElement());
    gdcm::Attribute<0x0018, 0x0050> thickness;
    thickness.SetValue(f.thickness);
    ds.Replace(thickness.GetAsDataElement());
    return ds;
}

gdcm::DataSet valueTransformation(const gdw_frame &f) {
    gdcm::DataSet ds;
    gdcm::Attribute<0x0028, 0x1052> intercept;
    intercept.SetValue(f.intercept);
    ds.Replace(intercept.GetAsDataElement());
    gdcm::Attribute<0x0028, 0x1053> slope;
    slope.SetValue(f.slope);
    ds.Replace(slope.GetAsDataElement());
    gdcm::Attribute<0x0028, 0x1054> type;
    type.SetValue("US");
    ds.Replace(type.GetAsDataElement());
    return ds;
}

gdcm::DataSet frameContent(const gdw_frame &f) {
    gdcm::DataSet ds;
    gdcm::Attribute<0x0020, 0x9056> stack;
    stack.SetValue(std::to_string(f.stack_id));
    ds.Replace(stack.GetAsDataElement());
    gdcm::Attribute<0x0020, 0x9057> position;
    position.SetValue(f.in_stack_position);
    ds.Replace(position.GetAsDataElement());
    gdcm::Attribute<0x0020, 0x9157> index;
    const uint32_t values[2] = {f.stack_id, f.in_stack_position};
    index.SetValues(values, 2, true);
    ds.Replace(index.GetAsDataElement());
    return ds;
}

/// True when two frames give the same value for the functional groups named by `group`.
bool agree(const gdw_frame &a, const gdw_frame &b, int group) {
    switch (group) {
    case GDW_SHARED_ORIENTATION: return std::memcmp(a.orientation, b.orientation, sizeof a.orientation) == 0;
    case GDW_SHARED_PIXEL_MEASURES:
        return std::memcmp(a.pixel_spacing, b.pixel_spacing, sizeof a.pixel_spacing) == 0 && a.thickness == b.thickness;
    default: return a.slope == b.slope && a.intercept == b.intercept;
    }
}

/// Writes `ds` as a Part 10 file in `syntax`; the file meta information comes from the data set.
void writeDataSet(const gdcm::DataSet &ds, const char *path, gdw_transfer_syntax syntax) {
    gdcm::Writer writer;
    writer.GetFile().SetDataSet(ds);
    writer.GetFile().GetHeader().SetDataSetTransferSyntax(gdcm::TransferSyntax(syntaxType(syntax)));
    // GDCM asserts (aborts) when it cannot open a file name itself, so open the stream here.
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw std::runtime_error(std::string(path) + ": cannot create the file: " + std::strerror(errno));
    writer.SetStream(out);
    if (!writer.Write() || !out.flush()) throw std::runtime_error(std::string(path) + ": GDCM could not write the file");
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

extern "C" int gdw_builder_add_frame(gdw_builder b, const gdw_frame *frame, uint32_t rows, uint32_t columns,
                                     uint16_t bits_stored) {
    GD_PROTECT({
        auto *builder = static_cast<Builder *>(b);
        if (rows == 0 || columns == 0) throw std::runtime_error("a frame has no pixels");
        if (bits_stored < 8 || bits_stored > 16) throw std::runtime_error("bits stored must be 8...16");
        if (!builder->frames.empty() && (rows != builder->rows || columns != builder->columns || bits_stored != builder->bitsStored))
            throw std::runtime_error("every frame of an enhanced image needs the same rows, columns and bits stored");
        builder->rows = rows;
        builder->columns = columns;
        builder->bitsStored = bits_stored;
        builder->framePixels.insert(builder->framePixels.end(), frame->pixels, frame->pixels + static_cast<size_t>(rows) * columns);
        builder->frames.push_back(*frame);
        builder->frames.back().pixels = nullptr;
        return 0;
    })
    return -1;
}

extern "C" int gdw_builder_write_enhanced(gdw_builder b, const char *path, gdw_transfer_syntax syntax, int shared_groups) {
    GD_PROTECT({
        const auto *builder = static_cast<const Builder *>(b);
        const auto &frames = builder->frames;
        if (frames.empty()) throw std::runtime_error(std::string(path) + ": no frames added");
        for (int group : {GDW_SHARED_ORIENTATION, GDW_SHARED_PIXEL_MEASURES, GDW_SHARED_TRANSFORMATION}) {
            if (!(shared_groups & group)) continue;
            for (const auto &f : frames)
                if (!agree(frames[0], f, group))
                    throw std::runtime_error(std::string(path) + ": a functional group asked to be shared differs between frames");
        }
        gdcm::DataSet ds;
        // Attributes the Enhanced MR IOD keeps in its functional groups, not at the top level.
        const gdcm::Tag moved[] = {gdcm::Tag(0x0018, 0x0050), gdcm::Tag(0x0018, 0x0081), gdcm::Tag(0x0020, 0x1041),
                                   gdcm::Tag(0x0028, 0x1052), gdcm::Tag(0x0028, 0x1053)};
        for (const auto &e : builder->elements)
            if (std::find(std::begin(moved), std::end(moved), e.GetTag()) == std::end(moved)) ds.Replace(e);

        gdcm::Attribute<0x0028, 0x0002> samples = {1};
        gdcm::Attribute<0x0028, 0x0004> photometric = {"MONOCHROME2"};
        gdcm::Attribute<0x0028, 0x0008> count = {static_cast<int>(frames.size())};
        gdcm::Attribute<0x0028, 0x0010> rows = {static_cast<uint16_t>(builder->rows)};
        gdcm::Attribute<0x0028, 0x0011> columns = {static_cast<uint16_t>(builder->columns)};
        gdcm::Attribute<0x0028, 0x0100> allocated = {16};
        gdcm::Attribute<0x0028, 0x0101> stored = {builder->bitsStored};
        gdcm::Attribute<0x0028, 0x0102> high = {static_cast<uint16_t>(builder->bitsStored - 1)};
        gdcm::Attribute<0x0028, 0x0103> representation = {0};
        for (const auto &e : {samples.GetAsDataElement(), photometric.GetAsDataElement(), count.GetAsDataElement(),
                              rows.GetAsDataElement(), columns.GetAsDataElement(), allocated.GetAsDataElement(),
                              stored.GetAsDataElement(), high.GetAsDataElement(), representation.GetAsDataElement()})
            ds.Replace(e);

        gdcm::DataSet shared;
        if (shared_groups & GDW_SHARED_ORIENTATION) putMacro(shared, gdcm::Tag(0x0020, 0x9116), planeOrientation(frames[0]));
        if (shared_groups & GDW_SHARED_PIXEL_MEASURES) putMacro(shared, gdcm::Tag(0x0028, 0x9110), pixelMeasures(frames[0]));
        if (shared_groups & GDW_SHARED_TRANSFORMATION) putMacro(shared, gdcm::Tag(0x0028, 0x9145), valueTransformation(frames[0]));
        const double echo = numericElement(*builder, gdcm::Tag(0x0018, 0x0081), -1);
        if (echo >= 0) {
            gdcm::DataSet mrEcho;
            gdcm::Attribute<0x0018, 0x9082> effective = {echo};
            mrEcho.Replace(effective.GetAsDataElement());
            putMacro(shared, gdcm::Tag(0x0018, 0x9114), mrEcho);
        }
        std::vector<gdcm::DataSet> perFrame;
        for (const auto &f : frames) {
            gdcm::DataSet item;
            putMacro(item, gdcm::Tag(0x0020, 0x9111), frameContent(f));
            putMacro(item, gdcm::Tag(0x0020, 0x9113), planePosition(f));
            if (!(shared_groups & GDW_SHARED_ORIENTATION)) putMacro(item, gdcm::Tag(0x0020, 0x9116), planeOrientation(f));
            if (!(shared_groups & GDW_SHARED_PIXEL_MEASURES)) putMacro(item, gdcm::Tag(0x0028, 0x9110), pixelMeasures(f));
            if (!(shared_groups & GDW_SHARED_TRANSFORMATION)) putMacro(item, gdcm::Tag(0x0028, 0x9145), valueTransformation(f));
            perFrame.push_back(item);
        }
        ds.Replace(sequence(gdcm::Tag(0x5200, 0x9229), {shared}));
        ds.Replace(sequence(gdcm::Tag(0x5200, 0x9230), perFrame));
        ds.Replace(encodePixels(builder->framePixels, builder->rows, builder->columns, static_cast<uint32_t>(frames.size()),
                                builder->bitsStored, syntax, path));
        writeDataSet(ds, path, syntax);
        return 0;
    })
    return -1;
}
