# frozen_string_literal: true

# A strict reader of the Prometheus text exposition format, so specs check what a scraper
# would parse rather than searching the text for substrings.
module PrometheusText
  # Raised for a line a Prometheus scraper would refuse.
  class ParseError < StandardError; end

  NAME = /[a-zA-Z_:][a-zA-Z0-9_:]*/
  LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/
  SAMPLE = /\A(#{NAME})(?:\{((?:#{LABEL})(?:,#{LABEL})*)?\})? (\S+)\z/
  TYPES = %w[counter gauge histogram summary untyped].freeze

  # @return [Hash{String => Hash}] per metric family: `type`, `help` and `samples`, each
  #   sample `[name, labels, value]`
  def self.parse(text)
    families = {}
    text.each_line(chomp: true).with_index(1) do |line, number|
      parse_line(families, line)
    rescue ParseError => e
      raise ParseError, "line #{number}: #{e.message}: #{line.inspect}"
    end
    families
  end

  def self.parse_line(families, line)
    if (help = /\A# HELP (#{NAME}) (.*)\z/.match(line))
      family(families, help[1])[:help] = help[2]
    elsif (type = /\A# TYPE (#{NAME}) (\S+)\z/.match(line))
      declare(families, type[1], type[2])
    elsif !line.empty? && !line.start_with?("#")
      sample(families, line)
    end
  end

  def self.declare(families, name, type)
    raise ParseError, "unknown type #{type}" unless TYPES.include?(type)
    raise ParseError, "TYPE after samples" if families.dig(name, :samples)&.any?

    family(families, name)[:type] = type
  end

  def self.sample(families, line)
    match = SAMPLE.match(line) or raise ParseError, "not a sample"
    name = match[1]
    labels = match[2].to_s.scan(LABEL).to_h.transform_values { |value| unescape(value) }
    families[owner(families, name)][:samples] << [name, labels, number(match[-1])]
  end

  def self.owner(families, name)
    found = families.keys.find { |f| name == f || name.match?(/\A#{f}_(bucket|sum|count)\z/) }
    found or raise ParseError, "sample of an undeclared family"
  end

  def self.number(text)
    { "+Inf" => Float::INFINITY, "-Inf" => -Float::INFINITY, "NaN" => Float::NAN }
      .fetch(text) { Float(text) }
  rescue ArgumentError
    raise ParseError, "#{text.inspect} is not a number"
  end

  def self.unescape(value)
    value.gsub(/\\(.)/) { Regexp.last_match(1) == "n" ? "\n" : Regexp.last_match(1) }
  end

  def self.family(families, name)
    families[name] ||= { type: nil, help: nil, samples: [] }
  end

  # The value of the one sample called `name` with exactly `labels`.
  def self.value(families, name, labels = {})
    samples = families.values.flat_map { |family| family[:samples] }
    found = samples.select { |sample| sample[0] == name && sample[1] == labels }
    raise ParseError, "#{found.size} samples #{name}#{labels}" unless found.size == 1

    found.first[2]
  end
end
