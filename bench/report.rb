# frozen_string_literal: true

module Bench
  # One row of the table: our figure, the peer's measured in the same run, their ratio and
  # whether it meets the target.
  Row = Struct.new(:figure, :payload, :ours, :peer_name, :peer, :unit, :ratio, :target,
                   :met, :spread, :note, keyword_init: true) do
    def to_h = super.transform_values { |v| v.is_a?(Float) ? v.round(4) : v }
  end

  # Prints rows as an aligned table, and writes them with the machine's description as JSON.
  class Report
    # Wide enough for every figure the benchmark prints, so the columns stay aligned.
    COLUMNS = [["figure", 47], ["payload", 7], ["ours", 16], ["peer", 46], ["ratio", 9],
               ["target", 10], ["met", 4]].freeze

    def initialize(environment, quiet: false)
      @environment = environment
      @rows = []
      @quiet = quiet
    end

    attr_reader :rows

    def <<(row)
      @rows << row
      print_row(row) unless @quiet
      $stdout.flush
    end

    def header
      puts @environment.map { |k, v| "#{k}: #{v}" }.join("  |  ")
      puts
      puts line(COLUMNS.map(&:first))
      puts line(COLUMNS.map { |_, width| "-" * width })
    end

    def footer
      met = @rows.count(&:met)
      puts
      puts "#{met} of #{@rows.size} targets met. Ratios compare figures measured in this run; " \
           "\"~\" marks a spread of more than 20 % between runs."
      @rows.select(&:note).each { |row| puts "note (#{row.figure}, #{row.payload}): #{row.note}" }
    end

    def write_json(path)
      File.write(path, JSON.pretty_generate(environment: @environment, rows: @rows.map(&:to_h)))
    end

    private

    def print_row(row)
      ours = "#{format_value(row.ours)} #{row.unit}"
      peer = row.peer ? "#{format_value(row.peer)} #{row.peer_name}" : row.peer_name.to_s
      ratio = row.ratio ? format("%.2fx", row.ratio) : "-"
      ratio = "~#{ratio}" if row.spread && row.spread > 0.2
      puts line([row.figure, row.payload, ours, peer, ratio, row.target, row.met ? "yes" : "NO"])
    end

    def format_value(value)
      return value.to_s unless value.is_a?(Numeric)
      return format("%.0f", value) if value >= 1000

      format("%.3g", value)
    end

    def line(cells)
      cells.zip(COLUMNS).map { |cell, (_, width)| cell.to_s.ljust(width) }.join(" ").rstrip
    end
  end
end
