package api

import (
	"github.com/raftkms/raftkms/crypto"
)

type regionsReply struct {
	reply
	Regions struct {
		Region []struct {
			RegionID string `json:"RegionId"`
		} `json:"Region"`
	} `json:"Regions"`
}

func (s *Server) describeRegions(c *call) (any, error) {
	if err := s.authorize(c, "kms:DescribeRegions", nil); err != nil {
		return nil, err
	}
	out := regionsReply{reply: c.reply()}
	out.Regions.Region = append(out.Regions.Region, struct {
		RegionID string `json:"RegionId"`
	}{s.cfg.Region})
	return out, nil
}

type passwordReply struct {
	reply
	RandomPassword string `json:"RandomPassword"`
}

func (s *Server) getRandomPassword(c *call) (any, error) {
	n, err := c.integer("PasswordLength", 8, 128, 32)
	if err != nil {
		return nil, err
	}
	exclude, err := c.text("ExcludeCharacters", 256)
	if err != nil {
		return nil, err
	}
	var classes []string
	for _, cl := range []struct{ param, chars string }{
		{"ExcludeLowercase", crypto.PasswordLower}, {"ExcludeUppercase", crypto.PasswordUpper},
		{"ExcludeNumbers", crypto.PasswordDigits}, {"ExcludePunctuation", crypto.PasswordPunctuation},
	} {
		skip, err := c.boolean(cl.param, false)
		if err != nil {
			return nil, err
		}
		if !skip {
			classes = append(classes, cl.chars)
		}
	}
	each, err := c.boolean("RequireEachIncludedType", true)
	if err != nil {
		return nil, err
	}
	if err := s.authorize(c, "kms:GetRandomPassword", nil); err != nil {
		return nil, err
	}
	p, err := crypto.RandomPassword(int(n), classes, exclude, each)
	if err != nil {
		return nil, err
	}
	return passwordReply{c.reply(), p}, nil
}
