# frozen_string_literal: true

# Builds the Rust extension into lib/tasker_events/ through the same extconf.rb and Makefile
# that `gem install` uses. TASKER_EVENTS_CARGO_PROFILE=dev gives a faster, unoptimised build.
desc "Build the native extension into lib/"
task :compile do
  lib = File.expand_path("../lib", __dir__)
  Dir.chdir(File.expand_path("../ext/tasker_events", __dir__)) do
    ruby "extconf.rb"
    sh "make"
    sh "make", "install", "sitearchdir=#{lib}"
  end
end
