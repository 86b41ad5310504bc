// SPDX-License-Identifier: Apache-2.0
#include "lib/source/registry_source.hpp"

#include <algorithm>
#include <cstring>
#include <optional>

#include "formats/registry.hpp"
#include "formats/tar/tar_source.hpp"
#include "lib/io/hashing_reader.hpp"
#include "lib/io/peek_reader.hpp"
#include "lib/source/oci_layout.hpp"
#include "lib/source/registry_image.hpp"

namespace cdi::source::registry {
namespace {

using formats::tar::detail::TarSource;

// One layer being read: blob → sha256 tap → (gzip|zstd)? → tar.
struct Layer {
  size_t index = 0;                    // position in the manifest (0 = base)
  Descriptor desc;
  std::shared_ptr<io::HashTap> tap;
  std::unique_ptr<io::Reader> decoded;   // owns the blob reader and the hashing reader
  std::unique_ptr<TarSource> tar;        // reads *decoded; destroyed first
  bool verified = false;                 // verify_layer ran (its tap is spent)

  std::string name() const { return "layer " + std::to_string(index) + " (" + desc.digest.substr(0, 19) + "…)"; }
  ~Layer() { tar.reset(); }
};

// Reads what is left of the blob and checks its sha256 and size against the manifest.
Result<void> verify_layer(Layer& l) {
  l.verified = true;
  auto hex = CDI_TRY(l.tap->finish());
  auto got = "sha256:" + hex;
  if (got != l.desc.digest)
    return fail(Errc::corrupt_input, l.name() + ": digest mismatch: the manifest says " + l.desc.digest +
                                         ", the downloaded blob is " + got + " (corrupted in transit or on the registry)");
  if (l.tap->bytes() != l.desc.size)
    return fail(Errc::corrupt_input, l.name() + ": size mismatch: the manifest says " + std::to_string(l.desc.size) +
                                         " bytes, the blob has " + std::to_string(l.tap->bytes()));
  return {};
}

// A damaged layer is first a digest question: when decoding failed, the digest (if the rest of
// the blob can still be read) tells whether the bytes were corrupted on the way.
Error layer_error(Layer& l, Error e) {
  if (e.code() == Errc::corrupt_input && l.tap && !l.verified) {
    l.tar.reset();
    if (auto v = verify_layer(l); !v) return std::move(v).error();
  }
  return std::move(e).context(l.name());
}

Result<std::unique_ptr<Layer>> open_layer(ImageStore& store, const Descriptor& d, size_t index, const HttpContext& ctx) {
  auto layer = std::make_unique<Layer>();
  layer->index = index;
  layer->desc = d;
  auto blob = CDI_TRY_CTX(store.open_blob(d), layer->name());
  auto [hashing, tap] = CDI_TRY(io::HashingReader::open(std::move(blob), util::DigestAlgo::sha256));
  layer->tap = tap;
  auto peek = std::make_unique<io::PeekReader>(std::move(hashing));
  auto head = CDI_TRY_CTX(peek->peek(formats::k_probe_bytes), layer->name());
  // The layer codecs of the OCI image spec (gzip, zstd) bid; nothing bidding is a plain tar.
  static constexpr std::string_view k_layer_codecs[] = {"gzip", "zstd"};
  formats::FormatFilter filter{unsigned(formats::FormatKind::compression), k_layer_codecs};
  auto bid = formats::best_bid(head, filter);
  if (bid.row) {
    formats::OpenOptions oo;
    oo.codec = formats::CodecOptions{0, ctx.cancel};
    layer->decoded = CDI_TRY_CTX(bid.row->open(std::move(peek), oo), layer->name());
  } else {
    layer->decoded = std::move(peek);
  }
  auto tar = TarSource::open(*layer->decoded, ctx.cancel);
  if (!tar) return std::unexpected(layer_error(*layer, std::move(tar).error()));
  layer->tar = std::move(*tar);
  return layer;
}

class DiskReader final : public io::Reader {
 public:
  DiskReader(std::unique_ptr<ImageStore> store, std::unique_ptr<Layer> layer, DiskFinder finder, std::string entry,
             uint64_t size, std::vector<std::pair<std::string, std::string>> labels, std::optional<std::string> pin)
      : m_store(std::move(store)), m_layer(std::move(layer)), m_finder(std::move(finder)), m_entry(std::move(entry)),
        m_size(size), m_labels(std::move(labels)), m_pin(std::move(pin)) {}
  ~DiskReader() override { m_layer.reset(); }   // the layer's HTTP reader may call into m_store

  Result<size_t> read(std::span<std::byte> dst) override {
    if (m_done || dst.empty()) return 0;
    if (m_failed) return fail(Errc::internal, "read after an error");
    auto r = read_some(dst);
    if (!r) {
      m_failed = true;
      return std::unexpected(layer_error(*m_layer, std::move(r).error()));
    }
    return r;
  }

  io::ReaderInfo info() const override {
    io::ReaderInfo i;
    i.name = m_store->kind() + "[" + m_entry + "]";
    i.size = m_size;
    i.labels = m_labels;
    if (m_pin) {   // docker://: read again by the manifest digest, the layer digest its validator
      i.pinned_url = m_pin;
      i.validator = m_layer->desc.digest;
      i.content_addressed = true;
    }
    return i;
  }

 private:
  Result<size_t> read_some(std::span<std::byte> dst) {
    for (;;) {
      if (m_block_used < m_block.bytes.size()) {
        if (m_pos < m_block.offset) {   // a hole before the block
          size_t n = static_cast<size_t>(std::min<uint64_t>(dst.size(), m_block.offset - m_pos));
          std::memset(dst.data(), 0, n);
          m_pos += n;
          return n;
        }
        size_t n = std::min(dst.size(), m_block.bytes.size() - m_block_used);
        std::memcpy(dst.data(), m_block.bytes.data() + m_block_used, n);
        m_block_used += n;
        m_pos += n;
        return n;
      }
      if (!m_entry_done) {
        auto b = CDI_TRY(m_layer->tar->next_block());
        if (b) {
          m_block = *b;
          m_block_used = 0;
          if (m_block.offset + m_block.bytes.size() > m_size)
            return fail(Errc::corrupt_input, m_entry + ": data beyond the entry's size");
          continue;
        }
        m_entry_done = true;
      }
      if (m_pos < m_size) {   // a hole at the end
        size_t n = static_cast<size_t>(std::min<uint64_t>(dst.size(), m_size - m_pos));
        std::memset(dst.data(), 0, n);
        m_pos += n;
        return n;
      }
      // The disk is complete: the rest of its layer must hold no second disk, and the whole
      // blob must match its digest, before the end is reported.
      for (;;) {
        auto* e = CDI_TRY(m_layer->tar->next_header());
        if (!e) break;
        auto path = formats::tar::detail::entry_path(e);
        auto kind = formats::tar::detail::entry_kind(e);
        auto role = m_finder.classify(path, kind == formats::tar::detail::EntryKind::regular,
                                      kind == formats::tar::detail::EntryKind::directory);
        if (role != DiskFinder::Role::ignore)
          return fail(Errc::unsupported, "the image holds several files under disk/ (" + m_entry + ", " +
                                             normalize_entry_path(path) + "); a containerDisk has exactly one");
      }
      m_layer->tar.reset();
      CDI_TRY(verify_layer(*m_layer));
      m_done = true;
      return 0;
    }
  }

  std::unique_ptr<ImageStore> m_store;
  std::unique_ptr<Layer> m_layer;
  DiskFinder m_finder;
  std::string m_entry;
  uint64_t m_size;
  std::vector<std::pair<std::string, std::string>> m_labels;
  std::optional<std::string> m_pin;   // docker://host/repo@<manifest digest>
  formats::tar::detail::DataBlock m_block;
  size_t m_block_used = 0;
  uint64_t m_pos = 0;
  bool m_entry_done = false;
  bool m_done = false;
  bool m_failed = false;
};

void log(const HttpContext& ctx, const std::string& s) {
  if (ctx.log) ctx.log(s);
}

Result<std::unique_ptr<io::Reader>> open_image(const ImageReference& ref, const RegistrySourceOptions& opts,
                                               const HttpContext& ctx) {
  std::unique_ptr<ImageStore> store;
  if (ref.transport == Transport::docker) store = CDI_TRY(open_registry_client(ref, opts.client, ctx));
  else store = CDI_TRY(open_oci_layout(ref, ctx.cancel));

  auto mb = CDI_TRY(store->manifest(ref.manifest_reference()));
  auto m = CDI_TRY_CTX(parse_manifest(mb.body, mb.content_type), "manifest " + mb.digest);
  bool from_index = false;
  if (m.is_index) {
    Platform want{opts.os, opts.architecture.empty() ? host_architecture() : normalize_architecture(opts.architecture),
                  opts.variant};
    auto d = CDI_TRY(select_platform(m, want));
    log(ctx, "index " + mb.digest + ": selected " + d.digest + " for " + want.os + "/" + want.architecture);
    mb = CDI_TRY(store->manifest(d.digest));
    m = CDI_TRY_CTX(parse_manifest(mb.body, mb.content_type), "manifest " + mb.digest);
    if (m.is_index) return fail(Errc::unsupported, "nested image indexes are not supported (" + mb.digest + ")");
    from_index = true;
  }
  auto config_text = CDI_TRY_CTX(store->small_blob(m.config), "image config");
  auto config = CDI_TRY_CTX(parse_config(config_text), "image config " + m.config.digest);
  CDI_TRY(refuse_bootc(config));
  if (!from_index && !opts.architecture.empty()) CDI_TRY(check_architecture(config, opts.architecture));
  auto labels = kubevirt_labels(config.env);
  log(ctx, "manifest " + mb.digest + ": " + std::to_string(m.layers.size()) + " layer(s), " + config.os + "/" +
               config.architecture);

  DiskFinder finder;
  std::vector<std::string> not_regular;
  for (size_t i = m.layers.size(); i-- > 0;) {
    auto layer = CDI_TRY(open_layer(*store, m.layers[i], i, ctx));
    log(ctx, "reading " + layer->name() + ", " + std::to_string(m.layers[i].size) + " bytes");
    auto scan = [&]() -> Result<std::optional<std::pair<std::string, uint64_t>>> {
      for (;;) {
        auto* e = CDI_TRY(layer->tar->next_header());
        if (!e) return std::nullopt;
        auto path = formats::tar::detail::entry_path(e);
        auto kind = formats::tar::detail::entry_kind(e);
        auto role = finder.classify(path, kind == formats::tar::detail::EntryKind::regular,
                                    kind == formats::tar::detail::EntryKind::directory);
        if (role == DiskFinder::Role::disk)
          return std::make_pair(normalize_entry_path(path), static_cast<uint64_t>(archive_entry_size(e)));
        if (role == DiskFinder::Role::not_regular)
          not_regular.push_back(normalize_entry_path(path) + " (" + std::string(formats::tar::detail::kind_name(kind)) + ")");
      }
    };
    auto found = scan();
    if (!found) return std::unexpected(layer_error(*layer, std::move(found).error()));
    if (*found) {
      log(ctx, "disk " + (*found)->first + " (" + std::to_string((*found)->second) + " bytes) in " + layer->name());
      // A registry serves a manifest by its digest: the same image can be read again (an
      // oci:/oci-archive: layout is a local directory or file that is not pinned: read once).
      std::optional<std::string> pin;
      if (ref.transport == Transport::docker) pin = "docker://" + ref.host + "/" + ref.repository + "@" + mb.digest;
      return std::unique_ptr<io::Reader>(std::make_unique<DiskReader>(std::move(store), std::move(layer), std::move(finder),
                                                                      (*found)->first, (*found)->second, std::move(labels),
                                                                      std::move(pin)));
    }
    if (!not_regular.empty())
      return fail(Errc::unsupported, "the disk under disk/ is not a regular file: " + not_regular.front());
    layer->tar.reset();
    if (auto v = verify_layer(*layer); !v) return std::unexpected(std::move(v).error());
    finder.end_layer();
  }
  return fail(Errc::not_found, "Failed to find VM disk image file in the container image (no regular file under disk/ in " +
                                   std::to_string(m.layers.size()) + " layer(s), whiteouts applied)");
}

}  // namespace

Result<std::unique_ptr<io::Reader>> open_registry_source(std::string_view url, const RegistrySourceOptions& opts,
                                                         const HttpContext& ctx) {
  auto ref = CDI_TRY(parse_reference(url));
  return open_image(ref, opts, ctx);
}

}  // namespace cdi::source::registry
