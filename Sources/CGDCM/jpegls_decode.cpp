// JPEG-LS frames decoded by CharLS directly (Debian's libcharls, the library GDCM itself links), without
// GDCM's JPEG-LS codec and its buffers in between. See gd_jpegls_decode_frame in include/cgdcm.h.
#include "cgdcm.h"
#include "shim_common.hpp"

#include <charls/charls.h>

#include <memory>
#include <stdexcept>
#include <string>

extern "C" int64_t gd_jpegls_decode_frame(const uint8_t *fragment, uint64_t length, int rows, int columns, int samples,
                                          int bits_allocated, uint8_t *out, uint64_t capacity) {
    GD_PROTECT({
        std::unique_ptr<charls_jpegls_decoder, void (*)(const charls_jpegls_decoder *)> decoder(
            charls_jpegls_decoder_create(), charls_jpegls_decoder_destroy);
        if (!decoder) throw std::runtime_error("JPEG-LS: cannot create a CharLS decoder");
        auto check = [](charls_jpegls_errc e) {
            if (e != charls::jpegls_errc::success) throw std::runtime_error(std::string("JPEG-LS: ") + charls_get_error_message(e));
        };
        check(charls_jpegls_decoder_set_source_buffer(decoder.get(), fragment, length));
        check(charls_jpegls_decoder_read_header(decoder.get()));
        charls_frame_info info;
        check(charls_jpegls_decoder_get_frame_info(decoder.get(), &info));
        // Only what maps onto the DICOM layout byte for byte is decoded here; anything else (colour, a
        // precision the allocation does not hold, another matrix) is GDCM's to decode or refuse.
        const int bytes = info.bits_per_sample <= 8 ? 1 : 2;
        if (static_cast<int>(info.width) != columns || static_cast<int>(info.height) != rows || info.component_count != 1 ||
            samples != 1 || bytes * 8 != bits_allocated)
            return int64_t(-2);
        size_t size = 0;
        check(charls_jpegls_decoder_get_destination_size(decoder.get(), 0, &size));
        if (size > capacity) throw std::runtime_error("JPEG-LS: the frame decodes to more bytes than the image holds");
        check(charls_jpegls_decoder_decode_to_buffer(decoder.get(), out, size, 0));
        return static_cast<int64_t>(size);
    })
    return -1;
}
