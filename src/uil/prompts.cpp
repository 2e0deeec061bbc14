// Prompt templates (data: configs/prompts/*.json, built in verbatim below), rendering,
// truncation, the output grammar and its parser.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "liber/error.h"
#include "liber/common/bytes.h"
#include "liber/common/hash.h"
#include "liber/uil.h"

namespace liber {

namespace {

using nlohmann::json;

// Verbatim copies of configs/prompts/uil_v4.json and item_v2.json (a test checks they match).
constexpr const char* kInterestTemplateJson = R"json({
  "version": "uil_v4",
  "system": "You are an expert in {item} recommendation. You get a user's profile, the summary of the user's interests written from their earlier ratings (or \"none\"), and the user's next {item} ratings.\nTask:\n1. Analyse the user's preferences along these factors: {facets}.\n2. Write a concise interest summary (one to three sentences) that updates the previous summary with the new ratings.\n3. Describe in one sentence how the interests shifted compared with the previous summary (if it is none, describe the starting interests; if nothing changed, say so).\nAnswer with one JSON object with exactly two string fields: \"summary\" (the updated interest summary, in your own words) and \"shift\" (the interest shift). Write real sentences about this user; never leave a field empty or use placeholders.",
  "user": "User profile: {user}\nPrevious interest summary: {previous}\nNew ratings: {count} {items}; {like_threshold} {rating_unit} or more counts as liked.\n{Categories} ({items}, mean rating): {category_profile}\n{behaviors_by_rating}",
  "rating_unit": "{rating_unit}"
}
)json";
constexpr const char* kItemTemplateJson = R"json({
  "version": "item_v2",
  "system": "You are an expert on {items}. Given a {item}'s title, {categories} and year, write a short factual description in at most two sentences: what kind of {item} it is and what you know of its {facets}. Do not invent facts you are unsure of.",
  "user": "Title: {title}\n{Categories}: {genres}\nYear: {year}"
}
)json";

// Replaces every {name} of `vars` in one left-to-right pass (substituted text is not rescanned).
std::string substitute(std::string_view text,
                       std::initializer_list<std::pair<std::string_view, std::string_view>> vars) {
  std::string out;
  out.reserve(text.size() + 256);
  std::size_t i = 0;
  while (i < text.size()) {
    if (text[i] == '{') {
      bool hit = false;
      for (const auto& [name, value] : vars) {
        if (text.size() - i >= name.size() + 2 && text.compare(i + 1, name.size(), name) == 0 &&
            text[i + 1 + name.size()] == '}') {
          out.append(value);
          i += name.size() + 2;
          hit = true;
          break;
        }
      }
      if (hit) continue;
    }
    out.push_back(text[i++]);
  }
  return out;
}

std::string trim(std::string_view s) {
  std::size_t b = 0, e = s.size();
  while (b < e && static_cast<unsigned char>(s[b]) <= ' ') ++b;
  while (e > b && static_cast<unsigned char>(s[e - 1]) <= ' ') --e;
  return std::string(s.substr(b, e - b));
}

std::string format_rating(float r) {
  if (std::isnan(r)) return "";
  if (std::fabs(r - std::round(r)) < 1e-4f) return fmt::format("{}", static_cast<int>(std::round(r)));
  return fmt::format("{:.1f}", r);
}

std::string attr_value(const Attribute& a, uint32_t row) {
  if (row >= a.rows()) return {};
  std::string out;
  for (uint32_t c : a.row(row)) {
    if (!out.empty()) out += ", ";
    out += a.vocab.key(c);
  }
  return out;
}

}  // namespace

// ---- Templates ------------------------------------------------------------------------

std::string PromptTemplate::hash() const {
  // Optional fields enter only when present: a template without them (uil_v1 has no
  // `behavior`, uil_v1-v3 no `rating_unit`) hashes as it did before the field existed.
  if (!rating_unit.empty()) return hex16(fnv1a_fields({version, system, user, behavior, rating_unit}));
  return hex16(behavior.empty() ? fnv1a_fields({version, system, user})
                                : fnv1a_fields({version, system, user, behavior}));
}

std::string PromptTemplate::to_json() const {
  json j{{"version", version}, {"system", system}, {"user", user}};
  if (!behavior.empty()) j["behavior"] = behavior;
  if (!rating_unit.empty()) j["rating_unit"] = rating_unit;
  return j.dump(2);
}

PromptTemplate PromptTemplate::from_json(std::string_view text, std::string_view where) {
  json j;
  try {
    j = json::parse(text);
  } catch (const std::exception& e) {
    throw Error(ErrorKind::Config, fmt::format("{}: not JSON: {}", where, e.what()));
  }
  PromptTemplate t;
  for (const char* field : {"version", "system", "user"}) {
    if (!j.is_object() || !j.contains(field) || !j[field].is_string() ||
        j[field].get<std::string>().empty())
      throw Error(ErrorKind::Config,
                  fmt::format("{}: the prompt template needs a non-empty string \"{}\"", where,
                              field));
  }
  t.version = j["version"].get<std::string>();
  t.system = j["system"].get<std::string>();
  t.user = j["user"].get<std::string>();
  for (auto [field, value] : {std::pair{"behavior", &t.behavior}, std::pair{"rating_unit", &t.rating_unit}}) {
    if (!j.contains(field)) continue;
    if (!j[field].is_string() || j[field].get<std::string>().empty())
      throw Error(ErrorKind::Config,
                  fmt::format("{}: \"{}\" must be a non-empty string when present", where, field));
    *value = j[field].get<std::string>();
  }
  return t;
}

namespace {

std::string capitalised(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

// Without a category the profile line has nothing to show: it goes, with its line break.
std::string drop_profile_line(std::string text) {
  for (std::string_view p : {"{category_profile}", "{genre_profile}"}) {
    const std::size_t at = text.find(p);
    if (at == std::string::npos) continue;
    const std::size_t b = text.rfind('\n', at);
    const std::size_t e = text.find('\n', at);
    const std::size_t from = b == std::string::npos ? 0 : b;
    const std::size_t to = e == std::string::npos ? text.size() : (b == std::string::npos ? e + 1 : e);
    text.erase(from, to - from);
  }
  return text;
}

}  // namespace

PromptTemplate PromptTemplate::for_domain(const Domain& d) const {
  const std::string category = d.category.empty() ? std::string("category") : d.category_singular();
  const std::string categories = d.category.empty() ? std::string("categories") : d.category_plural();
  const std::string facets = !d.facets.empty()     ? d.facets
                             : d.category.empty() ? "themes, mood, era, quality"
                                                  : "{category}, themes, mood, era, quality";
  // Two passes: the facets may themselves name {category}.
  auto fill = [&](const std::string& text) {
    const std::string with_facets = substitute(text, {{"facets", facets}});
    return substitute(with_facets, {{"item", d.item},
                               {"items", d.items},
                               {"category", category},
                               {"categories", categories},
                               {"Categories", capitalised(categories)},
                               {"rating_unit", d.rating_unit}});
  };
  PromptTemplate t = *this;
  t.system = fill(system);
  t.user = fill(d.category.empty() ? drop_profile_line(user) : user);
  t.behavior = fill(behavior);
  t.rating_unit = fill(rating_unit);
  return t;
}

const PromptTemplate& builtin_interest_template() {
  static const PromptTemplate t = PromptTemplate::from_json(kInterestTemplateJson, "uil_v4");
  return t;
}

const PromptTemplate& builtin_item_template() {
  static const PromptTemplate t = PromptTemplate::from_json(kItemTemplateJson, "item_v2");
  return t;
}

PromptTemplate load_template(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw Error(ErrorKind::Io, fmt::format("cannot read prompt template {}", file.string()));
  std::stringstream ss;
  ss << in.rdbuf();
  return PromptTemplate::from_json(ss.str(), file.string());
}

// ---- Rendering ------------------------------------------------------------------------

std::string describe_user(const BehaviorLog& log, std::string_view external_user) {
  const uint32_t row = log.users.ids.find(external_user);
  if (row == 0) return "unknown";
  std::vector<std::string> parts;
  for (const Attribute& a : log.users.attributes) {
    if (a.name == "zip" || row >= a.rows() || a.row(row).empty()) continue;
    std::string v;
    for (uint32_t c : a.row(row)) v += (v.empty() ? "" : ", ") + std::string(a.label(a.vocab.key(c)));
    if (a.name == "gender") parts.push_back(v);
    else if (a.name == "age") parts.push_back("age " + v);
    else parts.push_back(a.name + ": " + v);
  }
  if (parts.empty()) return "unknown";
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : ", ") + p;
  return out;
}

std::vector<BehaviorText> behavior_texts(const BehaviorLog& log,
                                         std::span<const StoredEvent> events) {
  const Attribute* genres = log.domain.category.empty() ? nullptr : log.items.attribute(log.domain.category);
  std::vector<BehaviorText> out;
  out.reserve(events.size());
  for (const StoredEvent& e : events) {
    BehaviorText b;
    const uint32_t row = log.items.ids.find(e.item);
    if (row != 0 && row < log.items.titles.size()) {
      b.title = log.items.titles[row];
      b.year = row < log.items.years.size() ? log.items.years[row] : 0;
      if (genres) b.genres = attr_value(*genres, row);
    } else {
      b.title = "item " + e.item;
    }
    b.rating = e.rating;
    b.label = e.label;
    out.push_back(std::move(b));
  }
  return out;
}

namespace {

// {title} carries the year once: ML titles already end in "(1995)".
std::string title_with_year(const BehaviorText& b) {
  const std::string year = b.year > 0 ? std::to_string(b.year) : std::string();
  if (year.empty() || b.title.find(year) != std::string::npos) return b.title;
  return b.title + " (" + year + ")";
}

bool is_liked(const BehaviorText& b, float like_threshold) {
  const bool rated = !std::isnan(b.rating);
  return rated && b.label < 0 ? b.rating >= like_threshold : b.label == 1;
}

}  // namespace

std::string render_behaviors_by_rating(std::span<const BehaviorText> behaviors,
                                       float like_threshold, std::string_view rating_unit) {
  const std::string units(rating_unit.empty() ? std::string_view("stars") : rating_unit);
  const std::string unit = units.size() > 1 && units.back() == 's' ? units.substr(0, units.size() - 1) : units;
  // Group key: the rating, or liked / not liked for unrated (click) logs. Rated groups sort
  // best first and come before the unrated ones.
  struct Group {
    bool rated;
    float rating;
    bool liked;
    std::string text;
  };
  std::vector<Group> groups;
  for (const BehaviorText& b : behaviors) {
    const bool rated = !std::isnan(b.rating);
    const bool liked = is_liked(b, like_threshold);
    auto g = std::find_if(groups.begin(), groups.end(), [&](const Group& x) {
      return x.rated == rated && (rated ? x.rating == b.rating : x.liked == liked);
    });
    if (g == groups.end()) {
      groups.push_back({rated, rated ? b.rating : 0.0f, liked, {}});
      g = groups.end() - 1;
    } else {
      g->text += "; ";
    }
    g->text += title_with_year(b);
  }
  std::stable_sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) {
    if (a.rated != b.rated) return a.rated;
    return a.rated ? a.rating > b.rating : a.liked && !b.liked;
  });
  std::string out;
  for (const Group& g : groups) {
    if (!out.empty()) out += '\n';
    if (g.rated)
      out += format_rating(g.rating) + ' ' + (g.rating == 1.0f ? unit : units) + ": ";
    else
      out += g.liked ? "liked: " : "not liked: ";
    out += g.text;
  }
  return out;
}

std::string render_genre_profile(std::span<const BehaviorText> behaviors, std::size_t top) {
  struct Genre {
    std::string name;
    std::size_t count = 0, rated = 0;
    double rating_sum = 0;
  };
  std::vector<Genre> genres;  // first-seen order; a partition has at most a few dozen
  for (const BehaviorText& b : behaviors) {
    std::string_view rest = b.genres;
    while (!rest.empty()) {
      const std::size_t comma = rest.find(", ");
      const std::string_view name = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 2);
      if (name.empty()) continue;
      auto g = std::find_if(genres.begin(), genres.end(), [&](const Genre& x) { return x.name == name; });
      if (g == genres.end()) g = genres.insert(genres.end(), Genre{std::string(name)});
      ++g->count;
      if (!std::isnan(b.rating)) {
        ++g->rated;
        g->rating_sum += b.rating;
      }
    }
  }
  if (genres.empty()) return "unknown";
  std::stable_sort(genres.begin(), genres.end(),
                   [](const Genre& a, const Genre& b) { return a.count > b.count; });
  if (top > 0 && genres.size() > top) genres.resize(top);
  std::string out;
  for (const Genre& g : genres) {
    if (!out.empty()) out += ", ";
    out += fmt::format("{} {}", g.name, g.count);
    if (g.rated > 0) out += fmt::format(" ({:.1f})", g.rating_sum / static_cast<double>(g.rated));
  }
  return out;
}

std::string render_behaviors(std::span<const BehaviorText> behaviors, float like_threshold,
                             std::string_view line) {
  std::string out;
  for (const BehaviorText& b : behaviors) {
    const bool rated = !std::isnan(b.rating);
    const bool liked = is_liked(b, like_threshold);
    const std::string genres = b.genres.empty() ? std::string("unknown genre") : b.genres;
    if (line.empty()) {  // uil_v1's line
      out += "- " + b.title + " | " + genres;
      if (b.year > 0) out += fmt::format(" | {}", b.year);
      if (rated) out += " | rated " + format_rating(b.rating);
      out += liked ? " (liked)" : " (not liked)";
    } else {
      const std::string year = b.year > 0 ? std::to_string(b.year) : std::string();
      out += substitute(line, {{"title", title_with_year(b)},
                               {"genres", genres},
                               {"year", year.empty() ? std::string("unknown") : year},
                               {"rating", rated ? format_rating(b.rating) : std::string("-")},
                               {"liked", liked ? "liked" : "not liked"}});
    }
    out += '\n';
  }
  if (!out.empty()) out.pop_back();
  return out;
}

std::vector<ChatMessage> render_interest_prompt(const PromptTemplate& t,
                                                std::string_view user_description,
                                                std::string_view previous_summary,
                                                std::span<const BehaviorText> behaviors,
                                                float like_threshold) {
  // Each form of the behaviors is rendered only for a template that uses it.
  const bool lines = t.user.find("{behaviors}") != std::string::npos;
  const std::string rendered = lines ? render_behaviors(behaviors, like_threshold, t.behavior) : "";
  const std::string count = std::to_string(behaviors.size());
  const std::string like = format_rating(like_threshold);
  const std::string prev = previous_summary.empty() ? std::string("none") : std::string(previous_summary);
  const std::string behaviors_text = rendered.empty() ? std::string("(none)") : rendered;
  const bool grouped = t.user.find("{behaviors_by_rating}") != std::string::npos;
  const bool profile = t.user.find("{genre_profile}") != std::string::npos ||
                       t.user.find("{category_profile}") != std::string::npos;
  std::string by_rating = grouped ? render_behaviors_by_rating(behaviors, like_threshold, t.rating_unit) : "";
  if (grouped && by_rating.empty()) by_rating = "(none)";
  const std::string genre_profile = profile ? render_genre_profile(behaviors) : "";
  std::vector<ChatMessage> m;
  m.push_back({"system", t.system});
  m.push_back({"user", substitute(t.user, {{"user", user_description},
                                           {"previous", prev},
                                           {"behaviors", behaviors_text},
                                           {"behaviors_by_rating", by_rating},
                                           {"genre_profile", genre_profile},
                                           {"category_profile", genre_profile},
                                           {"count", count},
                                           {"like_threshold", like}})});
  return m;
}

std::vector<ChatMessage> render_item_prompt(const PromptTemplate& t, const BehaviorText& item) {
  const std::string year = item.year > 0 ? std::to_string(item.year) : std::string("unknown");
  const std::string genres = item.genres.empty() ? std::string("unknown") : item.genres;
  std::vector<ChatMessage> m;
  m.push_back({"system", t.system});
  m.push_back({"user", substitute(t.user, {{"title", item.title}, {"genres", genres}, {"year", year}})});
  return m;
}

std::string prompt_hash(std::span<const ChatMessage> messages) {
  uint64_t h = kFnvOffset;
  for (const ChatMessage& m : messages) {
    h = fnv1a(m.role, h);
    h = fnv1a("\x1e", h);
    h = fnv1a(m.content, h);
    h = fnv1a("\x1f", h);
  }
  return hex16(h);
}

std::optional<FittedPrompt> fit_interest_prompt(const LlmEngine& engine, int max_tokens,
                                                const PromptTemplate& t,
                                                std::string_view user_description,
                                                std::string_view previous_summary,
                                                std::span<const BehaviorText> behaviors,
                                                float like_threshold) {
  const int budget = engine.context_length() - max_tokens;
  auto render = [&](std::size_t drop) {
    return render_interest_prompt(t, user_description, previous_summary, behaviors.subspan(drop),
                                  like_threshold);
  };
  FittedPrompt f;
  f.messages = render(0);
  f.prompt_tokens = engine.count_tokens(f.messages);
  if (f.prompt_tokens <= budget) return f;
  // Smallest drop that fits: count_tokens is monotone in the number of behaviors kept.
  std::size_t lo = 1, hi = behaviors.size();
  std::optional<FittedPrompt> best;
  while (lo <= hi) {
    const std::size_t mid = lo + (hi - lo) / 2;
    FittedPrompt c;
    c.messages = render(mid);
    c.prompt_tokens = engine.count_tokens(c.messages);
    c.dropped = mid;
    if (c.prompt_tokens <= budget) {
      best = std::move(c);
      if (mid == 0) break;
      hi = mid - 1;
    } else {
      lo = mid + 1;
    }
  }
  return best;
}

// ---- Output ---------------------------------------------------------------------------

std::string interest_grammar(int max_tokens) {
  // ~3.5 characters per token; the summary gets about half the budget, the shift a quarter,
  // the rest is JSON syntax and slack, so a complete object fits in max_tokens.
  const int tokens = std::max(max_tokens, 24);
  const int summary_chars = std::max(32, static_cast<int>(tokens * 0.5 * 3.5));
  const int shift_chars = std::max(16, static_cast<int>(tokens * 0.25 * 3.5));
  return fmt::format(
      "root ::= \"{{\" ws \"\\\"summary\\\":\" ws \"\\\"\" char{{20,{}}} \"\\\"\" ws \",\" ws "
      "\"\\\"shift\\\":\" ws \"\\\"\" char{{8,{}}} \"\\\"\" ws \"}}\"\n"
      "char ::= [^\"\\\\\\x00-\\x1F\\x7F] | \"\\\\\" [\"\\\\/nt]\n"
      "ws ::= \" \"?\n",
      summary_chars, shift_chars);
}

std::string interest_json_schema() {
  return R"({"type":"object","properties":{"summary":{"type":"string","minLength":1},)"
         R"("shift":{"type":"string","minLength":1}},"required":["summary","shift"],)"
         R"("additionalProperties":false})";
}

namespace {

// Why a generated field is no real text, or nullptr when it is. Small models under a
// grammar produce well-formed JSON around placeholders ("..."), punctuation runs ("} } }")
// or one phrase looped; those are retried like malformed output, not recorded as ok.
const char* degenerate_text(std::string_view text) {
  std::size_t letters = 0, visible = 0;
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalpha(u) || u >= 0x80) ++letters;
    if (!std::isspace(u)) ++visible;
  }
  if (letters < 3) return "has no words";
  if (visible >= 20 && letters * 2 < visible) return "is mostly punctuation";
  std::vector<std::string_view> words;
  for (std::size_t i = 0; i < text.size();) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    const std::size_t b = i;
    while (i < text.size() && !std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    if (i > b) words.push_back(text.substr(b, i - b));
  }
  if (words.size() >= 16) {
    std::sort(words.begin(), words.end());
    const auto distinct = std::unique(words.begin(), words.end()) - words.begin();
    if (static_cast<double>(distinct) < 0.3 * static_cast<double>(words.size()))
      return "repeats itself";
  }
  return nullptr;
}

}  // namespace

std::optional<InterestOutput> parse_interest_output(std::string_view text, std::string* why) {
  auto fail = [&](std::string reason) -> std::optional<InterestOutput> {
    if (why) *why = std::move(reason);
    return std::nullopt;
  };
  const std::size_t b = text.find('{');
  const std::size_t e = text.rfind('}');
  if (b == std::string_view::npos || e == std::string_view::npos || e < b)
    return fail(text.empty() ? "empty output" : "no JSON object in the output");
  json j;
  try {
    j = json::parse(text.substr(b, e - b + 1));
  } catch (const std::exception&) {
    return fail("malformed JSON");
  }
  if (!j.is_object()) return fail("output is not a JSON object");
  InterestOutput out;
  if (!j.contains("summary") || !j["summary"].is_string()) return fail("no \"summary\" string");
  out.summary = trim(j["summary"].get<std::string>());
  if (j.contains("shift") && j["shift"].is_string()) out.shift = trim(j["shift"].get<std::string>());
  else return fail("no \"shift\" string");
  if (out.summary.empty()) return fail("empty summary");
  if (const char* bad = degenerate_text(out.summary)) return fail(fmt::format("summary {}", bad));
  if (const char* bad = degenerate_text(out.shift)) return fail(fmt::format("shift {}", bad));
  return out;
}

}  // namespace liber
