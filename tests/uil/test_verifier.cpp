// The interest verifier on hand-written records: each check fires on the failure it names
// (the kinds Gemma 3 270M produced: copies down the cascade, restated instructions, praise
// of a genre rated low, invented titles, a bare link) and stays quiet on a faithful summary.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "liber/uil.h"

namespace liber {
namespace {

// A catalog of `items` (title, category values) in `domain`, whose category attribute holds them.
BehaviorLog catalog_of(const Domain& domain,
                       const std::vector<std::pair<std::string, std::vector<std::string>>>& items) {
  BehaviorLog log;
  log.like_threshold = 4;
  log.domain = domain;
  Attribute category;
  category.name = domain.category;
  category.multi = true;
  log.items.titles.push_back("");
  log.items.years.push_back(0);
  category.push_row({});
  for (std::size_t i = 0; i < items.size(); ++i) {
    log.items.ids.add(std::to_string(i + 1));
    log.items.titles.push_back(items[i].first);
    log.items.years.push_back(0);
    category.push_row(items[i].second);
  }
  log.items.attributes.push_back(std::move(category));
  return log;
}

BehaviorLog catalog() {
  return catalog_of(movie_domain(), {
      {"Toy Story (1995)", {"Animation", "Comedy"}},
      {"Toy Story 2 (1999)", {"Animation", "Comedy"}},
      {"Nightmare on Elm Street, A (1984)", {"Horror"}},
      {"Friday the 13th (1980)", {"Horror"}},
      {"Saving Private Ryan (1998)", {"Drama", "War"}},
      {"Schindler's List (1993)", {"Drama", "War"}},
      {"Sleepless in Seattle (1993)", {"Comedy", "Romance"}},
      {"Good Will Hunting (1997)", {"Drama"}},
      {"Matrix, The (1999)", {"Action", "Sci-Fi"}},
  });
}

BehaviorText behavior(const std::string& title, const std::string& genres, float rating) {
  BehaviorText b;
  b.title = title;
  b.genres = genres;
  b.rating = rating;
  return b;
}

// War dramas rated high, horror rated low, one comedy.
std::vector<BehaviorText> partition() {
  return {behavior("Saving Private Ryan (1998)", "Drama, War", 5),
          behavior("Schindler's List (1993)", "Drama, War", 5),
          behavior("Good Will Hunting (1997)", "Drama", 4),
          behavior("Nightmare on Elm Street, A (1984)", "Horror", 1),
          behavior("Friday the 13th (1980)", "Horror", 2),
          behavior("Toy Story 2 (1999)", "Animation, Comedy", 3)};
}

bool has_kind(const Verdict& v, std::string_view kind) {
  return std::any_of(v.reasons.begin(), v.reasons.end(),
                     [&](const std::string& r) { return reason_kind(r) == kind; });
}

class Verifier : public ::testing::Test {
 protected:
  BehaviorLog log = catalog();
  InterestVerifier verifier{log, builtin_interest_template()};
  Verdict check(const std::string& summary, const std::string& previous = "") {
    return verifier.verify({summary, "The interests moved toward war films."}, previous, partition());
  }
};

TEST_F(Verifier, AFaithfulSummaryPasses) {
  const Verdict v = check(
      "The user loves serious war dramas such as Saving Private Ryan and Schindler's List, "
      "dislikes horror, and is lukewarm about animated comedy like Toy Story 2.");
  EXPECT_TRUE(v.verified) << ::testing::PrintToString(v.reasons);
  EXPECT_EQ(v.penalty, 0);
  // An update that keeps some of the previous summary's words is not a copy.
  const Verdict u = check(
      "Still a fan of drama; this time war films dominate, rated five stars, while horror "
      "is rated low.",
      "The user is a fan of drama and thoughtful stories.");
  EXPECT_TRUE(u.verified) << ::testing::PrintToString(u.reasons);
}

TEST_F(Verifier, ACopyOfThePreviousSummaryIsRejected) {
  const std::string previous = "The user enjoys war dramas and historical stories with strong acting.";
  const Verdict exact = check(previous, previous);
  EXPECT_FALSE(exact.verified);
  EXPECT_TRUE(has_kind(exact, "copy"));
  const Verdict near = check("The user enjoys war dramas and historical stories with strong acting!!",
                             previous + " ");
  EXPECT_TRUE(has_kind(near, "copy")) << ::testing::PrintToString(near.reasons);
  const Verdict near2 =
      check("Overall, the user enjoys war dramas and historical stories with strong acting.", previous);
  EXPECT_TRUE(has_kind(near2, "near-copy")) << ::testing::PrintToString(near2.reasons);
  // Without a previous summary there is nothing to copy.
  EXPECT_TRUE(check(previous).verified);
}

TEST_F(Verifier, RestatedInstructionsAreRejected) {
  const Verdict v = check(
      "Analyse the user's preferences along these factors: genre, director and actors, era and "
      "country, themes, mood, critical acclaim.");
  EXPECT_FALSE(v.verified);
  EXPECT_TRUE(has_kind(v, "instructions")) << ::testing::PrintToString(v.reasons);
  // Gemma 3 270M's most common opening: one long run of the prompt inside other words.
  const Verdict run = check(
      "The user's profile is a summary of the interests written from their earlier ratings (or "
      "'none') and has been updated with new rating information about war dramas and horror.");
  EXPECT_TRUE(has_kind(run, "instructions")) << ::testing::PrintToString(run.reasons);
}

TEST_F(Verifier, PraiseOfAGenreRatedLowIsAContradiction) {
  const Verdict v = check("The user loves horror films and war dramas.");
  EXPECT_TRUE(has_kind(v, "genre-contradiction")) << ::testing::PrintToString(v.reasons);
  // Horror's mean here is 1.5 over 2: named with a negative cue it is no contradiction.
  EXPECT_TRUE(check("The user loves war dramas and does not like horror at all.").verified);
}

TEST_F(Verifier, GenresAndTitlesFromNowhereAreRejected) {
  const Verdict genre = check("The user is into romance films and war dramas these days.");
  EXPECT_TRUE(has_kind(genre, "genre-absent")) << ::testing::PrintToString(genre.reasons);
  // ... unless the previous summary carried it.
  EXPECT_FALSE(has_kind(check("The user is into romance films and war dramas these days.",
                              "A fan of romance."),
                        "genre-absent"));
  const Verdict title = check("The user adores Sleepless in Seattle and other war dramas of the nineties.");
  EXPECT_TRUE(has_kind(title, "title-absent")) << ::testing::PrintToString(title.reasons);
  // "Toy Story" inside the partition's "Toy Story 2" is that title.
  EXPECT_FALSE(has_kind(check("The user found Toy Story 2 fine and loved the war dramas."), "title-absent"));
}

TEST_F(Verifier, DegenerateTextAndLinksAreRejected) {
  EXPECT_TRUE(has_kind(check("Good movies."), "degenerate"));
  EXPECT_TRUE(has_kind(check("war war war war war war war war war war war war drama drama"), "degenerate"));
  const Verdict link = check("See https://www.imdb.com/title/tt0120815/ for the user's favourite films");
  EXPECT_FALSE(link.verified);
  EXPECT_TRUE(has_kind(link, "link"));
}

// Gemma 3 270M on ML-1M: a plot named with a genre word is still not an interest summary.
TEST_F(Verifier, APlotIsOffSubject) {
  const Verdict v = check(
      "The movie is about a man who has been in love with the girl he loves for years, and they "
      "meet again after being separated by war.");
  EXPECT_TRUE(has_kind(v, "off-subject")) << ::testing::PrintToString(v.reasons);
  EXPECT_FALSE(has_kind(v, "ungrounded"));
}
TEST_F(Verifier, AStoryAboutOneFilmIsOffSubject) {
  EXPECT_TRUE(has_kind(check("The movie is about a man who likes war, and a drama unfolds."), "off-subject"));
}

// Gemma 3 270M's first summary on the test fixture: a biography, about none of the movies.
TEST_F(Verifier, ASummaryAboutNothingOfThePartitionIsUngrounded) {
  const Verdict v = check(
      "She is a student who wants to study in the United States. She has been studying for 10 "
      "years and she likes movies");
  EXPECT_TRUE(has_kind(v, "ungrounded")) << ::testing::PrintToString(v.reasons);
  // A plural names the genre.
  EXPECT_FALSE(has_kind(check("She likes war films and serious dramas most of all."), "ungrounded"));
}

// Another domain: the checks use its category ("styles") and its item noun ("song").
TEST(VerifierDomain, SongsAreCheckedByTheirStyles) {
  Domain songs;
  songs.item = "song";
  songs.items = "songs";
  songs.category = "styles";
  const BehaviorLog log = catalog_of(songs, {{"Blue Train", {"Jazz"}},
                                             {"So What", {"Jazz"}},
                                             {"Paranoid Android", {"Rock"}},
                                             {"Iron Man Returns", {"Metal", "Rock"}},
                                             {"Purple Haze Live", {"Rock"}},
                                             {"Summer Sound Suite", {"Pop"}}});
  const PromptTemplate t = builtin_interest_template().for_domain(log.domain);
  const InterestVerifier verifier(log, t);
  const std::vector<BehaviorText> part = {behavior("Blue Train", "Jazz", 5),
                                          behavior("So What", "Jazz", 5),
                                          behavior("Paranoid Android", "Rock", 1),
                                          behavior("Iron Man Returns", "Metal, Rock", 2)};
  auto check = [&](const std::string& summary) {
    return verifier.verify({summary, "Jazz took over."}, "", part);
  };
  const Verdict good = check("The user is a jazz fan who enjoys Blue Train and dislikes rock.");
  EXPECT_TRUE(good.verified) << ::testing::PrintToString(good.reasons);
  EXPECT_TRUE(has_kind(check("The song is about a man who walks along a railway at night."), "off-subject"));
  EXPECT_TRUE(has_kind(check("The user is a big fan of rock and enjoys it most."), "genre-contradiction"));
  EXPECT_TRUE(has_kind(check("The user enjoys jazz and pop above everything else."), "genre-absent"));
  EXPECT_TRUE(has_kind(check("The user enjoys jazz, such as Purple Haze Live, above all."), "title-absent"));
  EXPECT_TRUE(has_kind(check("The user enjoys calm evenings with friends and good food."), "ungrounded"));
  // The instructions this model saw are the song wording's.
  EXPECT_TRUE(has_kind(check("You are an expert in song recommendation and you like it."), "instructions"));
}

TEST(VerifierReason, KindIsThePartBeforeTheColon) {
  EXPECT_EQ(reason_kind("near-copy: 91% of it"), "near-copy");
  EXPECT_EQ(reason_kind("copy"), "copy");
}

}  // namespace
}  // namespace liber
