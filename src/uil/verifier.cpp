// The interest verifier (liber/uil.h): checks computed in code, from the partition a record
// describes and the summary its prompt carried. Word-level, lower-cased, punctuation-blind:
// what the checks compare is what a reader would call the same words.
#include <algorithm>
#include <cctype>
#include <cmath>
#include <map>
#include <unordered_set>

#include <fmt/format.h>

#include "liber/error.h"
#include "liber/uil.h"
#include "liber/uil/keys.h"

namespace liber {

namespace {

// Lower-cased words of letters and digits ("sci-fi" -> "sci", "fi"; "children's" ->
// "children", "s"): the same split for summaries, titles, genres and instructions.
std::vector<std::string> words_of(std::string_view text) {
  std::vector<std::string> out;
  std::string w;
  for (char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (std::isalnum(c) || c >= 0x80) {
      w.push_back(static_cast<char>(std::tolower(c)));
    } else if (!w.empty()) {
      out.push_back(std::move(w));
      w.clear();
    }
  }
  if (!w.empty()) out.push_back(std::move(w));
  return out;
}

std::string joined(const std::vector<std::string>& words) {
  std::string s;
  for (const auto& w : words) (s += ' ') += w;
  return s + ' ';  // " a b c ": a phrase matches " b " only on word boundaries
}

std::unordered_set<std::string> triples(const std::vector<std::string>& w) {
  std::unordered_set<std::string> out;
  for (std::size_t i = 0; i + 3 <= w.size(); ++i) out.insert(w[i] + ' ' + w[i + 1] + ' ' + w[i + 2]);
  return out;
}

// Share of a's triples that b has.
double contained(const std::unordered_set<std::string>& a, const std::unordered_set<std::string>& b) {
  if (a.empty()) return 0;
  std::size_t hit = 0;
  for (const auto& t : a) hit += b.count(t);
  return static_cast<double>(hit) / static_cast<double>(a.size());
}

// "Matrix, The (1999)" -> "the matrix"; "Heat (1995)" -> "heat".
std::string title_phrase(std::string_view title) {
  std::string t(title);
  if (auto p = t.rfind(" ("); p != std::string::npos && t.back() == ')') t.resize(p);
  for (std::string_view article : {", The", ", A", ", An", ", Les", ", La", ", Le", ", Il", ", Das", ", Der"}) {
    if (t.size() > article.size() && t.compare(t.size() - article.size(), article.size(), article) == 0) {
      t = std::string(article.substr(2)) + " " + t.substr(0, t.size() - article.size());
      break;
    }
  }
  return joined(words_of(t));
}

// `phrase` (" drama ") in `text` on word boundaries, or its plural (" dramas ").
bool mentions(const std::string& text, const std::string& phrase) {
  if (text.find(phrase) != std::string::npos) return true;
  std::string plural = phrase;
  plural.insert(plural.size() - 1, "s");
  return text.find(plural) != std::string::npos;
}

// Words that, in the sentence that names a genre, say it is not liked.
bool negative_cue(const std::string& sentence) {
  static const char* const kCues[] = {" not ", " dislike", " disliked ", " less ", " low ",
                                      " lower ", " poor", " avoid", " disappoint", " negative",
                                      " rarely ", " weak", " mixed ", " worst ", " bad ",
                                      " lukewarm ", " unimpress", " no longer ", " lost "};
  for (const char* c : kCues)
    if (sentence.find(c) != std::string::npos) return true;
  return false;
}

// Words of taste: a summary of interests uses at least one. A plot ("The movie is about a
// young man who ...") uses none ("love", "loves" are left out: plots are full of them).
bool speaks_of_taste(const std::vector<std::string>& words) {
  static const std::unordered_set<std::string> kTaste = {
      "user", "users", "viewer", "viewers", "like", "likes", "liked", "enjoy", "enjoys",
      "enjoyed", "enjoying", "prefer", "prefers", "preferred", "preference", "preferences",
      "fan", "fans", "fond", "interest", "interests", "interested", "taste", "tastes",
      "favourite", "favourites", "favorite", "favorites", "rates", "rated", "rating",
      "ratings", "dislike", "dislikes", "disliked", "appreciates", "appreciate", "drawn",
      "gravitates", "watches", "watched", "keen", "preferring", "adores", "listener",
      "listeners", "listens", "listened", "reader", "readers", "reads", "buyer", "buyers",
      "buys", "bought", "shopper", "customer", "customers"};
  return std::any_of(words.begin(), words.end(), [](const std::string& w) { return kTaste.count(w) > 0; });
}

// Sentences of the summary as joined word strings.
std::vector<std::string> sentences_of(std::string_view text) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (std::size_t i = 0; i <= text.size(); ++i) {
    if (i == text.size() || text[i] == '.' || text[i] == ';' || text[i] == '!' || text[i] == '?') {
      auto w = words_of(text.substr(start, i - start));
      if (!w.empty()) out.push_back(joined(w));
      start = i + 1;
    }
  }
  return out;
}

}  // namespace

InterestVerifier::InterestVerifier(const BehaviorLog& log, const PromptTemplate& prompt)
    : like_threshold_(log.like_threshold) {
  // The words the model saw: the template with this domain's nouns (idempotent on an instance).
  const PromptTemplate t = prompt.for_domain(log.domain);
  instruction_triples_ = [&] {
    auto s = triples(words_of(t.system));
    for (const auto& x : triples(words_of(t.user))) s.insert(x);
    return s;
  }();
  std::vector<std::string> nouns = log.domain.item_synonyms;
  nouns.push_back(log.domain.item);
  for (const std::string& noun : nouns)
    for (const char* det : {" the", " this"}) plot_openers_.push_back(det + joined(words_of(noun)));
  // Titles of more than one short word only: "Heat" or "Big" would match ordinary prose.
  for (std::size_t i = 1; i < log.items.titles.size(); ++i) {
    std::string p = title_phrase(log.items.titles[i]);
    if (words_of(p).size() >= 2 && p.size() >= 10) titles_.push_back(std::move(p));
  }
  std::sort(titles_.begin(), titles_.end());
  titles_.erase(std::unique(titles_.begin(), titles_.end()), titles_.end());
  if (const Attribute* genres = log.domain.category.empty() ? nullptr : log.items.attribute(log.domain.category))
    for (uint32_t c = 1; c < genres->vocab.size(); ++c) genres_.push_back(genres->vocab.key(c));
}

Verdict InterestVerifier::verify(const InterestOutput& out, std::string_view previous,
                                 std::span<const BehaviorText> behaviors) const {
  Verdict v;
  auto flag = [&](std::string_view kind, const std::string& detail, double weight) {
    v.reasons.push_back(detail.empty() ? std::string(kind) : fmt::format("{}: {}", kind, detail));
    v.penalty += weight;
  };
  const std::vector<std::string> words = words_of(out.summary);
  const std::string text = joined(words);
  // Empty or degenerate.
  if (words.size() < 5) {
    flag("degenerate", fmt::format("{} words", words.size()), 3);
  } else {
    const std::unordered_set<std::string> distinct(words.begin(), words.end());
    const double ratio = static_cast<double>(distinct.size()) / static_cast<double>(words.size());
    if (words.size() >= 12 && ratio < 0.4)
      flag("degenerate", fmt::format("repeats itself ({} distinct of {} words)", distinct.size(), words.size()), 3);
  }
  const std::string lower = [&] {
    std::string s(out.summary);
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
  }();
  if (lower.find("http://") != std::string::npos || lower.find("https://") != std::string::npos ||
      lower.find("www.") != std::string::npos)
    flag("link", "a web address, not a summary", 3);
  if (out.summary.find('{') != std::string::npos || out.summary.find('}') != std::string::npos)
    flag("placeholders", "braces of a template in the text", 2);

  // "The movie is about ...": a story about one item, whatever words it uses.
  const bool plot = std::any_of(plot_openers_.begin(), plot_openers_.end(),
                                [&](const std::string& o) { return text.rfind(o, 0) == 0; });
  if (words.size() >= 5 && (plot || !speaks_of_taste(words)))
    flag("off-subject", "no word of the user's taste (a plot or a story, not interests)", 2);
  // A copy of the previous summary: nothing of this partition in it.
  const std::vector<std::string> prev_words = words_of(previous);
  const std::string prev_text = joined(prev_words);
  const auto own = triples(words);
  if (!prev_words.empty()) {
    if (words == prev_words) {
      flag("copy", "the previous summary, word for word", 3);
    } else {
      const double c = contained(own, triples(prev_words));
      if (own.size() >= 3 && c >= 0.8)
        flag("near-copy", fmt::format("{:.0f}% of its word triples are the previous summary's", 100 * c), 3);
    }
  }
  // The instructions restated: a share of its phrases, or one long run of the prompt's words.
  const double inst = contained(own, instruction_triples_);
  std::size_t run = 0, longest = 0;
  for (std::size_t i = 0; i + 3 <= words.size(); ++i) {
    run = instruction_triples_.count(words[i] + ' ' + words[i + 1] + ' ' + words[i + 2]) ? run + 1 : 0;
    longest = std::max(longest, run);
  }
  if (own.size() >= 3 && inst >= 0.3)
    flag("instructions", fmt::format("{:.0f}% of its word triples restate the prompt", 100 * inst), 2);
  else if (longest + 2 >= 6)
    flag("instructions", fmt::format("{} words in a row from the prompt", longest + 2), 2);

  // Claims about the partition's genres.
  struct GenreStats {
    std::size_t n = 0, rated = 0, liked = 0;
    double rating_sum = 0;
  };
  std::map<std::string, GenreStats> here;  // genre phrase -> stats
  std::unordered_set<std::string> titles_here;
  for (const BehaviorText& b : behaviors) {
    titles_here.insert(title_phrase(b.title));
    const bool rated = !std::isnan(b.rating);
    const bool liked = rated && b.label < 0 ? b.rating >= like_threshold_ : b.label == 1;
    std::size_t s = 0;
    while (s < b.genres.size()) {
      std::size_t e = b.genres.find(',', s);
      if (e == std::string::npos) e = b.genres.size();
      GenreStats& g = here[joined(words_of(b.genres.substr(s, e - s)))];
      ++g.n;
      g.liked += liked;
      if (rated) ++g.rated, g.rating_sum += b.rating;
      s = e + 1;
    }
  }
  const std::vector<std::string> sentences = sentences_of(out.summary);
  bool grounded = false;  // names something of the partition: a genre or a title
  for (const std::string& genre : genres_) {
    const std::string phrase = joined(words_of(genre));
    if (phrase.size() < 3 || !mentions(text, phrase)) continue;
    auto it = here.find(phrase);
    if (it != here.end()) grounded = true;
    if (it == here.end()) {
      if (prev_text.find(phrase) == std::string::npos)
        flag("genre-absent", fmt::format("{} is neither in the partition nor in the previous summary", genre), 1);
      continue;
    }
    const GenreStats& g = it->second;
    const bool low = g.rated >= 2 ? g.rating_sum / static_cast<double>(g.rated) < like_threshold_ - 1.0
                                  : g.n >= 3 && g.liked * 4 < g.n;
    if (!low) continue;
    bool praised = false;
    for (const std::string& s : sentences)
      if (mentions(s, phrase) && !negative_cue(s)) praised = true;
    if (praised)
      flag("genre-contradiction",
           g.rated >= 2 ? fmt::format("calls {} liked, but its mean rating here is {:.1f} over {}", genre,
                                      g.rating_sum / static_cast<double>(g.rated), g.rated)
                        : fmt::format("calls {} liked, but {} of its {} here are liked", genre, g.liked, g.n),
           1);
  }
  for (const std::string& t : titles_here)
    grounded = grounded || (words_of(t).size() >= 2 && text.find(t) != std::string::npos);
  // A summary that names nothing of the partition is not about it (a plot, a biography).
  // Only where the catalog gives genres to name: a bare catalog has nothing to check against.
  if (!grounded && !genres_.empty() && words.size() >= 5)
    flag("ungrounded", "names no genre and no title of the partition", 2);
  // Titles the partition does not have (nor the summary it was given).
  for (const std::string& t : titles_) {
    if (text.find(t) == std::string::npos || prev_text.find(t) != std::string::npos) continue;
    // "Toy Story" inside the partition's "Toy Story 2" is that title, not another.
    if (std::any_of(titles_here.begin(), titles_here.end(),
                    [&](const std::string& h) { return h.find(t) != std::string::npos; }))
      continue;
    flag("title-absent", fmt::format("names{}, which is not in the partition", t.substr(0, t.size() - 1)), 1);
    break;  // one is enough to say so
  }
  v.verified = v.reasons.empty();
  return v;
}

std::string_view reason_kind(std::string_view reason) {
  return reason.substr(0, std::min(reason.find(':'), reason.size()));
}

VerifyReport verify_interests(Store& store, const Variant& variant, const PromptTemplate* tmpl) {
  require_current_interests(store);
  const BehaviorLog log = load_behavior_log(store, /*with_events=*/false);
  const PromptTemplate t = (tmpl ? *tmpl : builtin_interest_template()).for_domain(log.domain);
  if (t.hash() != variant.template_hash)
    throw Error(ErrorKind::Config,
                fmt::format("variant '{}' was learned with template {} ({}), not {} ({}): give "
                            "its template to verify against",
                            variant.name, variant.template_version, variant.template_hash,
                            t.version, t.hash()));
  const InterestVerifier verifier(log, t);
  const std::string id = variant.id();
  VerifyReport report;
  auto batch = store.new_batch();
  std::size_t pending = 0;
  for_each_partition_in(store, variant.partitions, [&](const StoredPartition& p) {
    const auto raw = store.get(uil::kInterests, interest_key(id, p.user, p.seq));
    if (!raw) return;
    InterestRecord r = InterestRecord::from_json(*raw);
    ++report.records;
    if (!r.ok) return;
    ++report.ok;
    // The behaviors the prompt showed: the truncation rule dropped the oldest.
    const std::size_t drop = std::min<std::size_t>(r.behaviors_dropped, p.events.size());
    const auto texts = behavior_texts(log, std::span(p.events).subspan(drop));
    const Verdict v = verifier.verify({r.summary, r.shift}, r.previous_summary, texts);
    const std::string quality = v.verified ? "verified" : "rejected";
    ++(v.verified ? report.verified : report.rejected);
    for (const auto& reason : v.reasons) ++report.reasons[std::string(reason_kind(reason))];
    if (quality == r.quality && v.reasons == r.reasons) return;
    r.quality = quality;
    r.reasons = v.reasons;
    batch->put(uil::kInterests, interest_key(id, r.user, r.seq), r.to_json());
    ++report.changed;
    if (++pending == 1024) {
      store.write(*batch, false);
      batch = store.new_batch();
      pending = 0;
    }
  });
  if (pending > 0) store.write(*batch, false);
  return report;
}

}  // namespace liber
