// SPDX-License-Identifier: Apache-2.0
#include "lib/source/oci_layout.hpp"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "formats/tar/tar_reader.hpp"
#include "lib/source/file_source.hpp"
#include "lib/util/digest.hpp"

namespace cdi::source::registry {
namespace fs = std::filesystem;
namespace {

class OciLayout final : public ImageStore {
 public:
  OciLayout(ImageReference ref, const util::CancelToken* cancel) : m_ref(std::move(ref)), m_cancel(cancel) {}

  Result<void> load_index() {
    auto text = CDI_TRY(read_small("index.json"));
    auto j = nlohmann::json::parse(text, nullptr, false);
    if (j.is_discarded() || !j.is_object() || !j.contains("manifests") || !j["manifests"].is_array())
      return fail(Errc::corrupt_input, m_ref.path + ": index.json is not an OCI image index");
    m_index = std::move(j);
    return {};
  }

  Result<ManifestBytes> manifest(std::string_view reference) override {
    Descriptor d;
    if (reference.starts_with("sha256:")) {
      d.digest = std::string(reference);
      d.size = k_max_manifest_bytes;   // checked by the read cap; the digest check is what counts
    } else {
      d = CDI_TRY(lookup(reference));
    }
    auto hex = CDI_TRY(sha256_hex_of(d.digest));
    auto body = CDI_TRY(read_small("blobs/sha256/" + hex));
    ManifestBytes m;
    m.digest = "sha256:" + util::digest_hex(util::DigestAlgo::sha256, std::as_bytes(std::span(body)));
    if (m.digest != d.digest)
      return fail(Errc::corrupt_input, "manifest digest mismatch: expected " + d.digest + ", calculated " + m.digest);
    m.content_type = d.media_type;
    m.body = std::move(body);
    return m;
  }

  Result<std::string> small_blob(const Descriptor& d) override {
    auto hex = CDI_TRY(sha256_hex_of(d.digest));
    auto body = CDI_TRY(read_small("blobs/sha256/" + hex));
    auto got = "sha256:" + util::digest_hex(util::DigestAlgo::sha256, std::as_bytes(std::span(body)));
    if (got != d.digest || body.size() != d.size)
      return fail(Errc::corrupt_input, "blob digest mismatch: expected " + d.digest + ", calculated " + got);
    return body;
  }

  Result<std::unique_ptr<io::Reader>> open_blob(const Descriptor& d) override {
    auto hex = CDI_TRY(sha256_hex_of(d.digest));
    return open_member("blobs/sha256/" + hex);
  }

  std::string kind() const override { return m_ref.transport == Transport::oci ? "oci" : "oci-archive"; }

 private:
  // The index.json entry for a tag (or the only entry).
  Result<Descriptor> lookup(std::string_view tag) {
    const auto& arr = m_index["manifests"];
    std::vector<std::string> names;
    for (const auto& e : arr) {
      std::string name;
      if (auto a = e.find("annotations"); a != e.end() && a->is_object())
        name = a->value("org.opencontainers.image.ref.name", std::string());
      if (!name.empty()) names.push_back(name);
      if ((tag.empty() && arr.size() == 1) || (!tag.empty() && name == tag)) {
        Descriptor d;
        d.digest = e.value("digest", std::string());
        d.media_type = e.value("mediaType", std::string());
        d.size = e.value("size", uint64_t{0});
        return d;
      }
    }
    std::string list;
    for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
    if (tag.empty())
      return fail(Errc::invalid_argument, m_ref.path + " holds " + std::to_string(arr.size()) +
                                              " images; name one with :TAG (tags: " + list + ")");
    return fail(Errc::not_found, "tag \"" + std::string(tag) + "\" not found in " + m_ref.path + " (tags: " + list + ")");
  }

  Result<std::unique_ptr<io::Reader>> open_member(const std::string& name) {
    FileSourceOptions fo;
    fo.cancel = m_cancel;
    if (m_ref.transport == Transport::oci) {
      auto p = fs::path(m_ref.path) / name;
      auto r = open_file_source(p.string(), fo);
      if (!r && r.error().code() == Errc::not_found)
        return fail(Errc::not_found, m_ref.path + ": " + name + " does not exist");
      return r;
    }
    auto file = CDI_TRY(open_file_source(m_ref.path, fo));
    formats::tar::EntryOptions eo;
    eo.entry = name;
    eo.cancel = m_cancel;
    return CDI_TRY_CTX(formats::tar::open_entry(std::move(file), eo), m_ref.path);
  }

  Result<std::string> read_small(const std::string& name) {
    auto r = CDI_TRY(open_member(name));
    std::string s(k_max_manifest_bytes + 1, '\0');
    auto n = CDI_TRY(io::read_full(*r, std::as_writable_bytes(std::span(s))));
    if (n > k_max_manifest_bytes) return fail(Errc::limit, m_ref.path + ": " + name + " is larger than 4 MiB");
    s.resize(n);
    return s;
  }

  ImageReference m_ref;
  const util::CancelToken* m_cancel;
  nlohmann::json m_index;
};

}  // namespace

Result<std::unique_ptr<ImageStore>> open_oci_layout(const ImageReference& ref, const util::CancelToken* cancel) {
  std::error_code ec;
  if (!fs::exists(ref.path, ec)) return fail(Errc::not_found, ref.path + ": No such file or directory");
  auto l = std::make_unique<OciLayout>(ref, cancel);
  CDI_TRY(l->load_index());
  return std::unique_ptr<ImageStore>(std::move(l));
}

}  // namespace cdi::source::registry
